; expect: assembles
; upload 2 KiB of tiles to VRAM $4000 with DMA channel 0
UploadTiles:
    PHP
    SEP #$20
    REP #$10
    LDA #$80 : STA $2115
    LDX #$4000 : STX $2116
    LDA #$01 : STA $4300
    LDA #$18 : STA $4301
    LDX.w #Tiles : STX $4302
    LDA.b #Tiles>>16 : STA $4304
    LDX #$0800 : STX $4305
    LDA #$01 : STA $420B
    PLP
    RTL
Tiles:
    db $00, $FF, $00, $FF
