; expect: syntax_error
    LDA.q #$01
    RTS
