; expect: syntax_error
; JMP cannot take a 24-bit address (that is JML)
    JMP $028000
