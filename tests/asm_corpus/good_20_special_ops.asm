; expect: assembles
    WDM #$42
    COP #$01
    COP
    BRK #$00
    BRK
    STP
    WAI
    XBA
    XCE
    TCD : TDC : TCS : TSC
    TXY : TYX
    NOP #3
    INX #2
    ASL : ASL A
    INC
    RTI
