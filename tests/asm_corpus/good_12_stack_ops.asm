; expect: assembles
    PEA $7E7E
    PLB : PLB
    PEI ($10)
    PER Return
    PLA
    PHA : PHX : PHY : PHP : PHD : PHK
    PLP : PLY : PLX : PLA
    PLD
Return:
    RTL
