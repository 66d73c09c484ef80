; expect: syntax_error
    db $00,,$01
