; expect: assembles
math pri on
fillbyte $FF
org $009000
base $7F8000
WramCode:
    LDA #$00
    RTL
base off
    fill 16
    skip 4
    warnpc $00A000
print "code ends at ", pc
assert 1+1 == 2, "math is broken"
