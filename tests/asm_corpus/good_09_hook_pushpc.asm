; expect: assembles
pushpc
org $0287A0
    JSL NewSwordCheck
    NOP
pullpc

NewSwordCheck:
    LDA $7EF359
    CMP #$02
    BCC +
    LDA #$01
+   RTL
