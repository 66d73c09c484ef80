; Symbols of the ROM hack the snippets are written against (the kind of file `[eval] symbols` names).
Link_ReceiveItem = $0985E2
Sprite_SpawnDynamically = $1DF65D
Hud_Refresh = $0DFAFD
!SaveFileFlags = $7EF3C6
!WramBuffer = $7E2000
macro SpriteDraw(tiles)
    LDA #<tiles>
    JSL $05DF6C
endmacro
