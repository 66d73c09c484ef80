; expect: assembles
macro SetRoomFlag(flag, value)
    LDA #<value>
    STA $7EF000+<flag>
endmacro

macro Wait()
    WAI
endmacro

    %SetRoomFlag($10, $01)
    %SetRoomFlag($11, $FF)
    %Wait()
    RTL
