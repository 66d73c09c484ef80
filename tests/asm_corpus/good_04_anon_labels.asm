; expect: assembles
    LDX #$10
-   DEX
    BNE -
    LDA $10
    BEQ +
    CMP #$07
    BCS ++
    INC $10
+   RTS
++
    STZ $10
--  LDA $4212
    AND #$80
    BEQ --
    RTS
