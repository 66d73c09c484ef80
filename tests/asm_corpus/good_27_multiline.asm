; expect: assembles
    LDA #$00 : STA $10 : STA $11
    db $01, $02,
       $03, $04
    LDA.b #($12+\
        $01)
    RTS
