; expect: assembles
ReadPointer:
    LDA #$00 : STA $00
    LDA #$80 : STA $01
    LDA #$02 : STA $02
    LDY #$0000
    LDA [$00],y
    STA [$03]
    ORA ($05,x)
    EOR ($05),y
    AND ($07,s),y
    RTL
