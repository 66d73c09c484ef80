; expect: assembles
    LDA.b $12
    LDA.w $0012
    LDA.l $000012
    LDA.b #$12
    LDA.w #$1234
    STA.l $7E0000,x
    JSL.l $008000
    JMP.w $8000
    LDX.w $12,y
    LDA.b $12,y
    RTS
