; expect: empty
; TODO: write the routine
;   (the model gave up)
