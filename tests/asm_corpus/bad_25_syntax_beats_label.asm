; expect: syntax_error
; an unknown label and a syntax error: the syntax error decides
    JSL Hud_Refresh
    STA ($12
