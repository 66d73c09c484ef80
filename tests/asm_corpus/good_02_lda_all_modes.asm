; expect: assembles
    LDA #$12            ; immediate
    LDA $12             ; direct page
    LDA $12,x           ; dp,x
    LDA $1234           ; absolute
    LDA $1234,x         ; abs,x
    LDA $1234,y         ; abs,y
    LDA $7E1234         ; long
    LDA $7E1234,x       ; long,x
    LDA ($12)           ; (dp)
    LDA ($12,x)         ; (dp,x)
    LDA ($12),y         ; (dp),y
    LDA [$12]           ; [dp]
    LDA [$12],y         ; [dp],y
    LDA $03,s           ; stack relative
    LDA ($03,s),y       ; (sr,s),y
    RTS
