; expect: syntax_error
if 1
    LDA #$00
    RTS
