; expect: assembles
!version = 2
if !version >= 2
    LDA #$02
elseif !version == 1
    LDA #$01
else
    LDA #$00
endif
if defined("version")
    STA $7E0010
endif
    RTS
