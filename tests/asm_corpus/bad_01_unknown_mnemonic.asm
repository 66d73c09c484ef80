; expect: syntax_error
    LDA #$01
    LDQ $10
    RTS
