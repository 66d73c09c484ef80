; expect: assembles
ClearBuffer:
    REP #$30
    LDX #$00FE
.loop
    STZ $1000,x
    DEX : DEX
    BPL .loop
    SEP #$30
.done:
    RTS
..unused
    RTS
