; expect: assembles
function rgb(r, g, b) = (b<<10)|(g<<5)|r
function bankof(x) = (x>>16)&$FF
    REP #$20
    LDA.w #rgb(31, 0, 15)
    STA $7EC500
    SEP #$20
    LDA #bankof($7E1234)
    PHA : PLB
    RTL
