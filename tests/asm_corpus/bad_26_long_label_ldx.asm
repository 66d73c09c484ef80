; expect: syntax_error
; LDX has no long mode and the label is in bank $7E
SomeRam = $7E0010
    LDX SomeRam
    RTS
