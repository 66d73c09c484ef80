; expect: assembles
!i = 0
while !i < 4
    STZ $0100+!i
    !i #= !i+1
endwhile
    RTS
