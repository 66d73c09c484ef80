; expect: other
; precheck: assembles
; the pre-check cannot measure branch distances
Start:
    BRA Far
    fill 300
Far:
    RTS
