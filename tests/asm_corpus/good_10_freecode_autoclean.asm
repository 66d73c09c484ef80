; expect: assembles
org $008056
    autoclean JSL MainHook

freecode
MainHook:
    PHB : PHK : PLB
    JSR .body
    PLB
    RTL
.body
    LDA $F4
    AND #$10
    BEQ .ret
    LDA $7E0020 : INC : STA $7E0020
.ret
    RTS
