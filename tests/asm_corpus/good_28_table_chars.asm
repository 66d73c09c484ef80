; expect: assembles
    LDA #'A'
    CMP #%01000001
    BNE +
    LDA #(1+2)*3
    LDA #~$0F&$FF
    LDA #$1234>>8
+   RTS
