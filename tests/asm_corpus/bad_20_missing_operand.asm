; expect: syntax_error
    LDA
    STA $10
