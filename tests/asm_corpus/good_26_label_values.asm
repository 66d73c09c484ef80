; expect: assembles
RoomFlags = $7EF000
Frame = $001A
    LDA.l RoomFlags
    ORA #$40
    STA.l RoomFlags
    LDA Frame
    LDX Frame
    RTL
