; expect: assembles
hirom
org $C08000
Reset:
    SEI
    CLC : XCE
    REP #$38
    LDX #$1FFF
    TXS
    SEP #$30
    JML Reset
