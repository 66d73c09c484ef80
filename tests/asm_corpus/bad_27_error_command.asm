; expect: other
; precheck: assembles
!slots = 9
if !slots > 8
    error "too many slots"
endif
