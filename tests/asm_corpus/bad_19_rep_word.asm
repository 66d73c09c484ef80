; expect: syntax_error
; REP/SEP take an 8-bit immediate
    REP #$1230
    RTS
