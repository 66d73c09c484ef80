; expect: assembles
CopyToWram:
    PHB
    REP #$30
    LDA #$03FF
    LDX #$8000
    LDY #$2000
    MVN $7E,$02
    SEP #$30
    PLB
    RTL
