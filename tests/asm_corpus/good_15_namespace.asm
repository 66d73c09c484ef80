; expect: assembles
namespace Overlay
Init:
    LDA #$01
    STA $7E0100
    RTS
Run:
    JSR Init
    RTS
namespace off
    JSR Overlay_Run
    RTL
