; expect: assembles
struct Sprite $7E0D00
    .y: skip 16
    .x: skip 16
    .state: skip 16
endstruct

    LDA Sprite.y,x
    STA Sprite.state,x
    LDA.w Sprite.x,x
    RTL
