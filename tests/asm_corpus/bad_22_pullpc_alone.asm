; expect: syntax_error
pullpc
    RTS
