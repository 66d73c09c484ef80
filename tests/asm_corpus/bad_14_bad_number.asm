; expect: syntax_error
    LDA #$GG
    RTS
