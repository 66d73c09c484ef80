; expect: unresolved_label
; uses a routine of the ROM hack that is not in the snippet
    LDA #$01
    JSL Link_ReceiveItem
    JSL Sprite_SpawnDynamically
    RTL
