; expect: assembles
!LinkState = $7E005D
!LinkHealth = $7EF36D
!HeartPiece = #$08
!Offset := $10
    LDA !LinkState
    CMP #$04
    BNE .skip
    LDA !LinkHealth
    CLC : ADC !HeartPiece
    STA !LinkHealth
    LDA.b !Offset
.skip
    RTL
