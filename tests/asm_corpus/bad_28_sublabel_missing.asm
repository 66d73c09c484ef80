; expect: unresolved_label
Main:
    LDA $10
    BNE .done
    RTS
