; expect: syntax_error
; STX has dp,y but no abs,y
    STX $1234,y
    RTS
