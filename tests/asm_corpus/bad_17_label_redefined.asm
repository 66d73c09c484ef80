; expect: other
Main:
    LDA #$00
Main:
    RTS
