; uses the hack's labels, a define and a macro from hack_labels.asm
    LDA !SaveFileFlags
    ORA #$01
    STA !SaveFileFlags
    JSL Link_ReceiveItem
    %SpriteDraw(4)
    RTL
