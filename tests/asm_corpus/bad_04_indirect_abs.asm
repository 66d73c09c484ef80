; expect: syntax_error
; (dp),y needs a direct-page operand
    LDA ($1234),y
    RTS
