; expect: assembles
; set Link's health to full
LDA #$A0
STA $7EF36D
LDA.b #$01
STA $7E0010
RTL
