; expect: other
Graphics:
    incbin "sword_gfx.bin"
