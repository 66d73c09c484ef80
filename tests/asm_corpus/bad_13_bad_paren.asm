; expect: syntax_error
    LDA ($12
    RTS
