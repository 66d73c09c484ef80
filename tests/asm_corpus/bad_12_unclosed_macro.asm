; expect: syntax_error
macro Foo()
    LDA #$00
    RTS
