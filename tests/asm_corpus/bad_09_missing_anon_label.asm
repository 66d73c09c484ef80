; expect: syntax_error
; a + label reference without a + label after it
    LDA $10
    BEQ +
    RTS
