; expect: assembles
    LDA Table,x
    STA $10
    RTS
Table:
    db $00, $01, $02, $03
    db "LINK", $FF
    dw Table, Table+2, $1234
    dl Table, $7E0000
    dd $12345678
Pointers:
    dw .a, .b
.a  db $10
.b  db $20
