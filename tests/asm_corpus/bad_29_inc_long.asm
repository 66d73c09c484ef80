; expect: syntax_error
; INC/DEC have no long addressing: a common model mistake
    LDA $7E0020
    INC $7E0020
    RTL
