; expect: unresolved_label
    LDA !SaveFileFlags
    ORA #$01
    STA !SaveFileFlags
    RTL
