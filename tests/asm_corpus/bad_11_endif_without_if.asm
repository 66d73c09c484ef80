; expect: syntax_error
    LDA #$00
endif
    RTS
