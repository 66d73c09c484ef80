"""Deterministic demo datasets: instruction-tuning records about 65816 / SNES ROM hacking.

Everything here is produced by this module's own templates and random choices; no code is
copied from any disassembly. The records only have to *look* like a real corpus so the QA and
dataset screens have realistic numbers to show (lengths with a tail, a few duplicates, some
unicode, a share of records with an ``input`` field, several domains and sources).

Pure standard library: ``core`` must not import UI, network or torch modules.

Determinism: every dataset draws from ``random.Random(f"{seed}:{name}")`` (string seeds are
hashed with SHA-512 by :mod:`random`, unlike :func:`hash`, which is salted per process), so the
same ``(name, count, seed)`` gives byte-identical files in any process.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from ..core.atomic import atomic_open

__all__ = ["DEMO_DATASETS", "iter_demo_records", "write_demo_dataset"]

DEMO_DATASETS: tuple[tuple[str, int], ...] = (
    ("vultr_train_full", 28707),
    ("vultr_gold_full", 11044),
    ("oos_enriched_v1_normalized_notodo", 19303),
    ("asm_gold_asar_pass_20260102", 3894),
    ("nerv_watcher_v1", 211),
    ("expert_router_v1", 53),
)

# --------------------------------------------------------------------------------------------
# Dataset profiles
# --------------------------------------------------------------------------------------------


class _Profile(NamedTuple):
    domains: tuple[tuple[str, float], ...]
    sources: tuple[tuple[str, float], ...]
    input_rate: float  # share of records carrying an `input` key
    long_rate: float  # share of records with an 8k-30k char output
    dup_rate: float  # share of records that repeat an earlier record exactly
    unicode_rate: float  # share of records with non-ASCII prose


_PROFILES: dict[str, _Profile] = {
    "vultr_train": _Profile(
        domains=(
            ("alttp_routines", 18), ("sprite_logic", 15), ("dma_hdma", 11), ("ppu_registers", 10),
            ("memory_map", 10), ("math_routines", 13), ("asar_syntax", 9), ("debugging", 5),
            ("oos_items", 4), ("oos_dungeons", 3),
        ),
        sources=(("vultr_gen_v2", 84), ("gold_curated", 10), ("oos_disasm", 4), ("asar_verified", 2)),
        input_rate=0.28, long_rate=0.006, dup_rate=0.006, unicode_rate=0.012,
    ),
    "vultr_gold": _Profile(
        domains=(
            ("alttp_routines", 20), ("sprite_logic", 16), ("dma_hdma", 12), ("ppu_registers", 11),
            ("memory_map", 11), ("math_routines", 12), ("asar_syntax", 12), ("debugging", 6),
        ),
        sources=(("gold_curated", 68), ("vultr_gen_v2", 27), ("asar_verified", 5)),
        input_rate=0.25, long_rate=0.007, dup_rate=0.004, unicode_rate=0.010,
    ),
    "oos_enriched": _Profile(
        domains=(
            ("oos_items", 28), ("oos_dungeons", 24), ("sprite_logic", 20), ("alttp_routines", 10),
            ("asar_syntax", 10), ("memory_map", 5), ("debugging", 3),
        ),
        sources=(("oos_disasm", 78), ("vultr_gen_v2", 12), ("gold_curated", 10)),
        input_rate=0.32, long_rate=0.007, dup_rate=0.006, unicode_rate=0.015,
    ),
    "asm_gold_asar_pass": _Profile(
        domains=(
            ("asar_syntax", 28), ("math_routines", 15), ("dma_hdma", 14), ("ppu_registers", 14),
            ("memory_map", 12), ("alttp_routines", 12), ("sprite_logic", 5),
        ),
        sources=(("asar_verified", 90), ("gold_curated", 10)),
        input_rate=0.22, long_rate=0.008, dup_rate=0.003, unicode_rate=0.008,
    ),
    "nerv_watcher": _Profile(
        domains=(("debugging", 70), ("memory_map", 20), ("sprite_logic", 10)),
        sources=(("nerv_watch_logs", 88), ("gold_curated", 12)),
        input_rate=0.35, long_rate=0.005, dup_rate=0.0, unicode_rate=0.02,
    ),
    "expert_router": _Profile(
        domains=(("routing", 1),),
        sources=(("router_labels", 1),),
        input_rate=0.30, long_rate=0.0, dup_rate=0.0, unicode_rate=0.02,
    ),
}

_DEFAULT_PROFILE = "vultr_train"


def _profile_for(name: str) -> _Profile:
    """Profiles are keyed by name prefix so e.g. ``oos_enriched_v2`` still gets the OoS flavour."""
    for key, prof in _PROFILES.items():
        if name.startswith(key):
            return prof
    return _PROFILES[_DEFAULT_PROFILE]


def _cum(pairs: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    names, cw, total = [], [], 0.0
    for n, w in pairs:
        total += w
        names.append(n)
        cw.append(total)
    return names, cw


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

_SPRITES = (
    "Octorok", "Keese", "Moblin", "Stalfos", "Goriya", "Darknut", "Poe", "Beamos", "Wizzrobe",
    "Chuchu", "Leever", "Helmasaur", "DekuScrub", "Booki", "Kydrog", "Manhandla", "VampireBat",
    "Thwomp", "Lynel", "Tektite", "Gibdo", "Pikit", "Armos", "Sea Urchin",
)
_ITEMS = (
    "RocsFeather", "PortalRod", "FishingRod", "Ocarina", "GoldstarHookshot", "ZoraMask",
    "DekuMask", "WolfMask", "BunnyHood", "StoneMask", "SpringBoots", "IceBlockRod", "MagicRing",
)
_DUNGEONS = (
    "MushroomGrotto", "TailPalace", "KalyxoCastle", "ZoraTemple", "GlaciaEstate", "GoronMines",
    "DragonShip", "ShrineOfPower", "FortressOfSecrets", "LavaLands",
)
_ACTIONS = (
    "Main", "Draw", "Init", "Prep", "CheckDamage", "MoveXY", "UpdateTimer", "Spawn", "Chase",
    "Idle", "Attack", "Recoil", "Bounce", "Animate", "Face", "Land",
)
_STATES = ("idle", "chase", "attack", "recoil", "wander", "jump", "wait", "retreat", "charge")
_AREAS = ("Overworld", "Dungeon", "Ancilla", "HUD", "Menu", "Palette", "Link", "Tilemap", "Message")

# A few well-known work RAM locations and what they mean (our own one-line descriptions).
_ADDR_NOTES: dict[str, str] = {
    "$0DD0": "the sprite state table (one byte per slot; $09 means active)",
    "$0E20": "the sprite type table (which sprite id occupies the slot)",
    "$0D00": "the sprite Y coordinate, low byte",
    "$0D10": "the sprite X coordinate, low byte",
    "$0D20": "the sprite Y coordinate, high byte",
    "$0D30": "the sprite X coordinate, high byte",
    "$0D40": "the sprite Y velocity",
    "$0D50": "the sprite X velocity",
    "$0D80": "the sprite AI sub-state used by most jump tables",
    "$0DF0": "the sprite's main countdown timer",
    "$0DE0": "the sprite facing direction",
    "$0E50": "the sprite hit points",
    "$0010": "the main game module index",
    "$0011": "the submodule index",
    "$001A": "the frame counter",
    "$0020": "Link's Y coordinate, low byte",
    "$0022": "Link's X coordinate, low byte",
    "$00F0": "joypad 1 held buttons (B/Y/Select/Start/d-pad)",
    "$00F4": "joypad 1 newly pressed buttons (B/Y/Select/Start/d-pad)",
    "$00F6": "joypad 1 newly pressed buttons (A/X/L/R)",
    "$00A0": "the current dungeon room id",
    "$008A": "the current overworld area",
    "$031F": "Link's invincibility flash timer",
    "$7EF36D": "Link's current health (8 per heart)",
    "$7EF36C": "Link's maximum health (8 per heart)",
    "$7EF360": "the rupee counter (16-bit)",
    "$7EF343": "the bomb count",
    "$7EF377": "the arrow count",
}
_SPR_TABLES = ("$0DD0", "$0E20", "$0D00", "$0D10", "$0D20", "$0D30", "$0D40", "$0D50", "$0D80",
               "$0DF0", "$0DE0", "$0E50")
_LONG_KNOWN = ("$7EF36D", "$7EF36C", "$7EF360", "$7EF343", "$7EF377")
_DP_KNOWN = ("$10", "$11", "$1A", "$20", "$22", "$F0", "$F4", "$F6", "$A0", "$8A")

_HWREGS: dict[int, str] = {
    0x2100: "INIDISP (forced blank and master brightness)",
    0x2101: "OBSEL (sprite size and character base)",
    0x2105: "BGMODE (background mode and tile size)",
    0x2107: "BG1SC (BG1 tilemap address and size)",
    0x210B: "BG12NBA (BG1/BG2 character data address)",
    0x210E: "BG1VOFS (BG1 vertical scroll, write twice)",
    0x2115: "VMAIN (VRAM address increment mode)",
    0x2116: "VMADDL (VRAM word address, low byte)",
    0x2118: "VMDATAL (VRAM data write, low byte)",
    0x2121: "CGADD (CGRAM palette index)",
    0x2122: "CGDATA (CGRAM data write, two writes per colour)",
    0x2126: "WH0 (window 1 left position)",
    0x212C: "TM (main screen layer enable)",
    0x212D: "TS (sub screen layer enable)",
    0x2131: "CGADSUB (colour math control)",
    0x2132: "COLDATA (fixed colour data)",
    0x4200: "NMITIMEN (NMI, IRQ and auto-joypad enable)",
    0x4202: "WRMPYA (multiplicand A)",
    0x4203: "WRMPYB (multiplicand B, starts the multiply)",
    0x4204: "WRDIVL (dividend, low byte)",
    0x4206: "WRDIVB (divisor, starts the divide)",
    0x420B: "MDMAEN (general-purpose DMA enable)",
    0x420C: "HDMAEN (HDMA channel enable)",
    0x4214: "RDDIVL (quotient, low byte)",
    0x4216: "RDMPYL (product or remainder, low byte)",
}
_HW_LIST = tuple(_HWREGS)

_MODULES = {0x07: "dungeon", 0x09: "overworld", 0x0E: "menu/text interface", 0x12: "death sequence",
            0x05: "file load", 0x0F: "spotlight close"}
_SPR_STATE_NAMES = {0x00: "inactive", 0x06: "dying (poof)", 0x08: "initialising", 0x09: "active",
                    0x0A: "carried by Link", 0x0B: "frozen/stunned", 0x03: "falling into a pit"}

_HEX2 = tuple(f"${i:02X}" for i in range(256))


def _h2(v: int) -> str:
    return _HEX2[v & 0xFF]


def _h4(v: int) -> str:
    return f"${v & 0xFFFF:04X}"


def _h6(v: int) -> str:
    return f"${v & 0xFFFFFF:06X}"


def _i(op: str, arg: str = "", cmt: str = "") -> str:
    """One indented instruction line with an optional aligned `;` comment."""
    s = "    " + op + (" " + arg if arg else "")
    if cmt:
        s = s.ljust(28) + "; " + cmt
    return s


def _a(word: str) -> str:
    """Indefinite article: 'an Octorok', 'a Moblin'."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _third_person(phrase: str) -> str:
    """'clear the buffer' -> 'clears the buffer' (first word only)."""
    word, _, rest = phrase.partition(" ")
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        word = word[:-1] + "ies"
    elif word.endswith(("s", "sh", "ch", "x")):
        word += "es"
    else:
        word += "s"
    return word + (" " + rest if rest else "")


# --------------------------------------------------------------------------------------------
# Code tasks: each builder returns a routine plus the prose needed to talk about it
# --------------------------------------------------------------------------------------------


class _Task(NamedTuple):
    do: str  # infinitive phrase: "clear $0200 bytes of WRAM at $7F:2000"
    name: str  # routine label
    lines: list[str]  # asm source lines
    notes: list[str]  # explanation sentences
    far: bool  # True when called with JSL / returns with RTL


class _G:
    """Per-dataset generator state (the RNG and small helpers)."""

    __slots__ = ("r",)

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def rom(self, hack: bool = True) -> int:
        r = self.r
        bank = r.randrange(0x20, 0x40) if hack else r.randrange(0x00, 0x10)
        return (bank << 16) | r.randrange(0x8000, 0xFFF0)

    def label(self, area: str | None = None) -> str:
        r = self.r
        return f"{area or r.choice(_AREAS)}_{r.choice(_ACTIONS)}{r.choice(('', '', 'Long', 'Ext', str(r.randint(2, 9))))}"


def _ret(lines: list[str], far: bool) -> None:
    lines.append(_i("RTL" if far else "RTS"))


def _b_wram_clear(g: _G) -> _Task:
    r = g.r
    size = r.choice((0x20, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800))
    bank = r.choice((0x7E, 0x7F))
    base = r.randrange(0x2000, 0xE000, 0x10)
    addr = (bank << 16) | base
    name = r.choice(("Clear", "Reset", "Wipe", "Init")) + r.choice(("Buffer", "Scratch", "Table", "WRAM", "Cache")) + r.choice(("", "Long", str(r.randint(1, 4))))
    far = r.random() < 0.75
    mode = r.randrange(3)
    lines = [f"{name}:"]
    notes = []
    if mode == 0:
        lines += [_i("PHP"), _i("REP", "#$30", "A, X, Y = 16-bit"), _i("LDA", "#$0000"),
                  _i("LDX", f"#{_h4(size - 2)}", "last word offset"), ".loop",
                  _i("STA.l", f"{_h6(addr)},X"), _i("DEX"), _i("DEX"), _i("BPL", ".loop"), _i("PLP", "", "restore caller's widths")]
        notes.append(f"With a 16-bit accumulator each `STA.l` clears two bytes, so the loop runs {size // 2} times instead of {size}.")
        notes.append("PHP/PLP saves and restores the M and X flags, so the caller keeps whatever register widths it had.")
    elif mode == 1:
        lines += [_i("PHB"), _i("SEP", "#$20"), _i("REP", "#$10"), _i("LDA", f"#{_h2(bank)}"), _i("PHA"),
                  _i("PLB", "", f"DB = {_h2(bank)}"), _i("LDX", f"#{_h4(size - 1)}"), ".loop",
                  _i("STZ.w", f"{_h4(base)},X"), _i("DEX"), _i("BPL", ".loop"), _i("PLB"), _i("SEP", "#$10")]
        notes.append(f"STZ has no long addressing mode, so the routine temporarily sets the data bank to {_h2(bank)} with PHA/PLB and uses `STZ.w abs,X`.")
        notes.append("PHB at the start and PLB at the end keep the caller's data bank intact.")
    else:
        lines += [_i("SEP", "#$20"), _i("REP", "#$10", "16-bit index"), _i("LDA", "#$00"),
                  _i("LDX", f"#{_h4(size - 1)}"), "-", _i("STA.l", f"{_h6(addr)},X"), _i("DEX"), _i("BPL", "-"),
                  _i("SEP", "#$10")]
        notes.append("An anonymous `-` label is enough for a tight loop like this; `BPL -` branches back to the nearest `-` above.")
        notes.append("X must be 16-bit because the offset can be larger than $FF.")
    _ret(lines, far)
    notes.append("The loop counts down, so `BPL` ends it once X wraps below zero after offset $0000 has been written.")
    return _Task(f"clear {_h4(size)} bytes of WRAM starting at {_h2(bank)}:{base:04X}", name, lines, notes, far)


def _b_mvn_copy(g: _G) -> _Task:
    r = g.r
    src = g.rom()
    dst_bank = r.choice((0x7E, 0x7F))
    dst = r.randrange(0x2000, 0xF000, 0x20)
    length = r.choice((0x40, 0x80, 0x100, 0x200, 0x300, 0x800, 0x1000))
    name = r.choice(("Copy", "Load", "Upload", "Move")) + r.choice(("Tiles", "Table", "Palette", "Tilemap", "Buffer", "Stats")) + "ToWRAM"
    lines = [f"{name}:", _i("PHB", "", "MVN changes DB"), _i("REP", "#$30"),
             _i("LDA", f"#{_h4(length - 1)}", "bytes to move - 1"), _i("LDX", f"#{_h4(src & 0xFFFF)}", "source offset"),
             _i("LDY", f"#{_h4(dst)}", "destination offset"),
             _i("MVN", f"{_h2(src >> 16)},{_h2(dst_bank)}", "source bank, destination bank"),
             _i("SEP", "#$30"), _i("PLB")]
    _ret(lines, True)
    notes = [
        "MVN copies C+1 bytes from X to Y, incrementing both; A must hold the length minus one and X/Y must be 16-bit.",
        f"After the move the data bank register equals the destination bank ({_h2(dst_bank)}), which is why DB is saved with PHB and restored with PLB.",
        "Each byte costs 7 cycles, so for large uploads during a frame a DMA channel is usually faster.",
    ]
    return _Task(f"copy {_h4(length)} bytes from {_h6(src)} to {_h2(dst_bank)}:{dst:04X} with MVN", name, lines, notes, True)


def _b_dma_vram(g: _G) -> _Task:
    r = g.r
    ch = r.randrange(0, 8)
    src = g.rom()
    vaddr = r.randrange(0x0000, 0x8000, 0x100)
    size = r.choice((0x200, 0x400, 0x800, 0x1000, 0x2000))
    base = 0x4300 + (ch << 4)
    name = r.choice(("Upload", "Transfer", "Stream", "Load")) + r.choice(("Gfx", "Tiles", "Tilemap", "Font", "Sheet")) + r.choice(("", "ToVRAM", "_DMA"))
    lines = [f"{name}:", _i("PHP"), _i("REP", "#$20", "16-bit A for address pairs"), _i("SEP", "#$10"),
             _i("LDX", "#$80"), _i("STX", "$2115", "VMAIN: +1 word after $2119"),
             _i("LDA", f"#{_h4(vaddr)}"), _i("STA", "$2116", "VRAM word address"),
             _i("LDA", "#$1801", "mode 1 (two regs), B-bus $18"), _i("STA", f"{_h4(base)}"),
             _i("LDA.w", f"#{_h4(src & 0xFFFF)}"), _i("STA", f"{_h4(base + 2)}", "source address"),
             _i("LDX", f"#{_h2(src >> 16)}"), _i("STX", f"{_h4(base + 4)}", "source bank"),
             _i("LDA", f"#{_h4(size)}"), _i("STA", f"{_h4(base + 5)}", "byte count"),
             _i("LDX", f"#{_h2(1 << ch)}"), _i("STX", "$420B", f"start DMA on channel {ch}"), _i("PLP")]
    _ret(lines, True)
    notes = [
        f"Writing $1801 to {_h4(base)} as a word sets both DMAP{ch} (transfer mode 1: alternate $2118/$2119) and BBAD{ch} ($18) in one store.",
        "VMAIN = $80 makes the VRAM address advance after the high byte is written, which is what word-sized transfers need.",
        "Run it during forced blank or inside NMI; VRAM writes while the screen is rendering are ignored.",
        f"The transfer is {size} bytes, i.e. {size // 2} VRAM words starting at word address {_h4(vaddr)}.",
    ]
    return _Task(f"transfer {_h4(size)} bytes from {_h6(src)} into VRAM at {_h4(vaddr)} using DMA channel {ch}", name, lines, notes, True)


def _b_dma_cgram(g: _G) -> _Task:
    r = g.r
    ch = r.randrange(0, 8)
    src = g.rom()
    first = r.choice((0x00, 0x10, 0x20, 0x40, 0x80, 0x90, 0xA0, 0xC0))
    count = r.choice((16, 32, 64, 128))
    base = 0x4300 + (ch << 4)
    name = r.choice(("Load", "Upload", "Apply", "Swap")) + r.choice(("Palette", "Colors", "SpritePal", "BgPal")) + r.choice(("", "Long", "Now"))
    lines = [f"{name}:", _i("SEP", "#$20"), _i("REP", "#$10"), _i("LDA", f"#{_h2(first)}"), _i("STA", "$2121", "CGADD"),
             _i("LDX", "#$2200", "mode 0, B-bus $22 (CGDATA)"), _i("STX", _h4(base)),
             _i("LDX", f"#{_h4(src & 0xFFFF)}"), _i("STX", _h4(base + 2)), _i("LDA", f"#{_h2(src >> 16)}"),
             _i("STA", _h4(base + 4)), _i("LDX", f"#{_h4(count * 2)}", f"{count} colours x 2 bytes"),
             _i("STX", _h4(base + 5)), _i("LDA", f"#{_h2(1 << ch)}"), _i("STA", "$420B"), _i("SEP", "#$10")]
    _ret(lines, True)
    notes = [
        "CGDATA ($2122) takes each 15-bit colour as two consecutive byte writes, so mode 0 (one register, byte by byte) is correct here.",
        f"CGADD is set to {_h2(first)} first; the CGRAM address then auto-increments after every second write.",
        "With a 16-bit X the low byte of `STX $43x0` lands in DMAPx and the high byte in BBADx.",
    ]
    return _Task(f"upload {count} colours from {_h6(src)} to CGRAM index {_h2(first)} via DMA channel {ch}", name, lines, notes, True)


def _b_hdma(g: _G) -> _Task:
    r = g.r
    ch = r.randrange(1, 8)
    target, desc = r.choice(((0x32, "COLDATA gradient"), (0x26, "window 1 left edge"), (0x0E, "BG1 vertical scroll"), (0x00, "brightness")))
    mode = 2 if target == 0x0E else 0
    base = 0x4300 + (ch << 4)
    tbl = g.label("Hdma") + "Table"
    name = "Setup" + r.choice(("Gradient", "Wave", "Window", "Fade", "Sky")) + "HDMA"
    lines = [f"{name}:", _i("SEP", "#$20"), _i("REP", "#$10"), _i("LDA", f"#{_h2(mode)}", "transfer mode"),
             _i("STA", _h4(base)), _i("LDA", f"#{_h2(target)}", f"B-bus $21{target:02X}"),
             _i("STA", _h4(base + 1)), _i("LDX.w", f"#{tbl}"), _i("STX", _h4(base + 2)),
             _i("LDA.b", f"#{tbl}>>16"), _i("STA", _h4(base + 4)), _i("LDA", f"#{_h2(1 << ch)}"),
             _i("TSB.b", "$9B", "HDMA enable mirror, written in NMI"), _i("SEP", "#$10")]
    _ret(lines, True)
    lines.append("")
    lines.append(f"{tbl}:")
    n = r.randint(4, 10)
    for _ in range(n):
        cnt = r.randint(2, 0x20)
        if mode == 2:
            lines.append(_i("db", f"{_h2(cnt)}, {_h2(r.randrange(0, 0x100))}, $00", "lines, scroll low, high"))
        elif target == 0x32:
            lines.append(_i("db", f"{_h2(cnt)}, {_h2(r.randrange(0x20, 0x100))}"))
        elif target == 0x00:
            lines.append(_i("db", f"{_h2(cnt)}, {_h2(r.randrange(0, 16))}"))
        else:
            lines.append(_i("db", f"{_h2(cnt)}, {_h2(r.randrange(0, 0x100))}"))
    lines.append(_i("db", "$00", "end of table"))
    notes = [
        f"Channel {ch} is pointed at $21{target:02X} ({desc}); each table entry is a line count followed by the value(s) to write.",
        "A count byte of $00 terminates the table; counts above $80 would switch the entry to repeat mode.",
        "HDMA is enabled through a RAM mirror that the NMI handler copies to $420C, so the effect starts cleanly on the next frame.",
    ]
    return _Task(f"set up an HDMA {desc} effect on channel {ch}", name, lines, notes, True)


def _b_fade(g: _G) -> _Task:
    r = g.r
    mirror = r.choice(("$13", "$0F00", "$7E0013"))
    step = r.choice((1, 1, 2))
    inc = r.random() < 0.5
    name = "Fade" + ("In" if inc else "Out") + r.choice(("", "Step", "Screen", "Slow"))
    ld = "LDA.l" if mirror.startswith("$7E") else "LDA"
    st = "STA.l" if mirror.startswith("$7E") else "STA"
    lines = [f"{name}:", _i("SEP", "#$20"), _i(ld, mirror, "INIDISP shadow"), _i("AND", "#$0F")]
    if inc:
        lines += [_i("CMP", "#$0F"), _i("BEQ", ".done", "already full brightness")]
        lines += [_i("INC")] * step
        if step > 1:
            lines += [_i("CMP", "#$10"), _i("BCC", "+"), _i("LDA", "#$0F"), "+"]
    else:
        lines += [_i("BEQ", ".done", "already black")]
        lines += [_i("DEC")] * step
        if step > 1:
            lines += [_i("BPL", "+"), _i("LDA", "#$00"), "+"]
    lines += [_i(st, mirror), ".done", _i("RTL")]
    notes = [
        f"The brightness lives in the low nibble of INIDISP ($2100); this routine only edits the shadow at {mirror} and lets NMI copy it to the register.",
        f"Calling it once per frame {'raises' if inc else 'lowers'} the level by {step} until it reaches {'$0F' if inc else '$00'}, giving a {16 // step}-frame fade.",
        "Writing $2100 directly mid-frame can cause visible tearing, which is why a shadow copy is used.",
    ]
    return _Task(f"fade the screen {'in' if inc else 'out'} by {step} brightness step{'s' if step > 1 else ''} per call", name, lines, notes, True)


def _b_bgmode(g: _G) -> _Task:
    r = g.r
    mode = r.choice((0x01, 0x09, 0x03, 0x07))
    tm = r.choice((0x13, 0x17, 0x11, 0x15, 0x1F))
    ts = r.choice((0x00, 0x02, 0x04, 0x10))
    sc = r.randrange(0x00, 0x80, 0x04)
    name = "Setup" + r.choice(("Title", "Map", "Credits", "Minigame", "Cutscene", "Menu")) + "Screen"
    lines = [f"{name}:", _i("SEP", "#$20"), _i("LDA", "#$80"), _i("STA", "$2100", "forced blank"),
             _i("LDA", f"#{_h2(mode)}"), _i("STA", "$2105", "BGMODE"), _i("LDA", f"#{_h2(sc)}"),
             _i("STA", "$2107", "BG1 tilemap base"), _i("LDA", f"#{_h2(r.randrange(0, 0x80))}"), _i("STA", "$210B"),
             _i("LDA", f"#{_h2(tm)}"), _i("STA", "$212C", "main screen layers"), _i("LDA", f"#{_h2(ts)}"),
             _i("STA", "$212D", "sub screen layers"), _i("STZ", "$2131"), _i("LDA", "#$0F"), _i("STA", "$2100", "screen on, full brightness")]
    _ret(lines, r.random() < 0.6)
    bits = [nm for b, nm in ((1, "BG1"), (2, "BG2"), (4, "BG3"), (8, "BG4"), (16, "OBJ")) if tm & b]
    notes = [
        f"BGMODE {_h2(mode)} selects mode {mode & 7}{' with BG3 priority' if mode & 8 else ''}.",
        f"TM = {_h2(tm)} enables {', '.join(bits)} on the main screen.",
        "All PPU setup happens inside forced blank ($2100 bit 7) so half-configured layers are never displayed.",
    ]
    far = lines[-1].strip() == "RTL"
    return _Task(f"configure the PPU for a mode {mode & 7} {name[5:-6].lower()} screen", name, lines, notes, far)


def _b_sprite_main(g: _G) -> _Task:
    r = g.r
    spr = r.choice(_SPRITES).replace(" ", "")
    nm = f"Sprite_{spr}"
    states = r.sample(_STATES, r.randint(2, 4))
    lines = [f"{nm}_Long:", _i("PHB"), _i("PHK"), _i("PLB", "", "DB = this bank"), _i("JSR", f"{nm}_Main"), _i("PLB"), _i("RTL"), "",
             f"{nm}_Main:", _i("LDA.w", "$0DD0,X", "state"), _i("CMP", "#$09"), _i("BNE", ".return", "only run while active")]
    if r.random() < 0.5:
        lines += [_i("LDA.w", "$0D80,X"), _i("ASL"), _i("TAY"), _i("REP", "#$20"), _i("LDA.w", ".states,Y"),
                  _i("STA.b", "$00"), _i("SEP", "#$20"), _i("JMP", "($0000)")]
    else:
        lines += [_i("LDA.w", "$0D80,X"), _i("JSL", "JumpTableLocal")]
    lines.append(".states")
    for s in states:
        lines.append(_i("dw", f".{s}"))
    for idx, s in enumerate(states):
        lines.append(f".{s}")
        choice = r.randrange(3)
        if choice == 0:
            lines += [_i("LDA.w", "$0DF0,X"), _i("BNE", "+"), _i("LDA", f"#{_h2(r.randint(0x10, 0x80))}"),
                      _i("STA.w", "$0DF0,X"), _i("INC.w", "$0D80,X", "next state"), "+"]
        elif choice == 1:
            spd = r.randint(4, 0x20)
            lines += [_i("LDA", f"#{_h2(spd)}"), _i("JSL", "Sprite_ApplySpeedTowardsPlayer"),
                      _i("JSL", "Sprite_MoveLong"), _i("LDA.w", "$0DF0,X"), _i("BNE", "+"),
                      _i("STZ.w", "$0D80,X", "back to first state"), "+"]
        else:
            lines += [_i("JSL", "Sprite_CheckDamageToPlayer"), _i("BCC", "+"), _i("LDA", f"#{_h2(r.randint(0x08, 0x30))}"),
                      _i("STA.w", "$0DF0,X"), _i("LDA", f"#{_h2((idx + 1) % len(states))}"), _i("STA.w", "$0D80,X"), "+"]
        lines.append(_i("RTS"))
    lines += [".return", _i("RTS")]
    notes = [
        f"`{nm}_Long` is the entry point called with JSL; it sets DB to the program bank (PHK/PLB) so the `.w` table reads hit this bank, then JSRs into the main routine.",
        f"The AI sub-state at $0D80,X selects one of {len(states)} handlers ({', '.join(states)}).",
        "X holds the sprite slot throughout, so every table access is `abs,X` into the per-slot sprite tables.",
    ]
    return _Task(f"run the main AI loop for {_a(spr)} sprite with {len(states)} states", nm + "_Long", lines, notes, True)


def _b_sprite_move(g: _G) -> _Task:
    r = g.r
    spr = r.choice(_SPRITES).replace(" ", "")
    nm = f"Sprite_{spr}_{r.choice(('MoveXY', 'Step', 'Drift', 'ApplyVelocity'))}"
    lines = [f"{nm}:", _i("LDA.w", "$0DF0,X", "timer"), _i("BEQ", "+"), _i("DEC.w", "$0DF0,X"), "+"]
    for lo, hi, vel, axis in (("$0D10", "$0D30", "$0D50", "X"), ("$0D00", "$0D20", "$0D40", "Y")):
        lines += [_i("LDA.w", f"{vel},X", f"{axis} velocity (signed)"), _i("STA.b", "$00"), _i("CLC"),
                  _i("ADC.w", f"{lo},X"), _i("STA.w", f"{lo},X"), _i("LDA.b", "$00"), _i("BPL", "+", "sign-extend into high byte"),
                  _i("LDA", "#$FF"), _i("BRA", "++"), "+", _i("LDA", "#$00"), "++", _i("ADC.w", f"{hi},X"), _i("STA.w", f"{hi},X")]
    _ret(lines, False)
    notes = [
        "Each axis adds the signed 8-bit velocity to the 16-bit position split across two tables (low byte, high byte).",
        "The carry from the low-byte ADC flows into the high-byte ADC; the high byte adds $FF for negative velocities to sign-extend.",
        "`+` and `++` are Asar's anonymous forward labels; `BRA ++` skips to the second one.",
        "The countdown timer at $0DF0,X is decremented first and stops at zero.",
    ]
    return _Task(r.choice((f"apply the X and Y velocity of {_a(spr)} to its position, ticking its timer first",
                           f"update {_a(spr)}'s 16-bit position from its signed velocities")), nm, lines, notes, False)


def _b_sprite_spawn(g: _G) -> _Task:
    r = g.r
    sid = r.randrange(0x00, 0xF3)
    spr = r.choice(_SPRITES).replace(" ", "")
    nm = f"Spawn{spr}"
    top = r.choice((0x0F, 0x0F, 0x0B, 0x07))
    lines = [f"{nm}:", _i("PHX"), _i("LDX", f"#{_h2(top)}", "search slots from the top"), ".loop",
             _i("LDA.w", "$0DD0,X"), _i("BEQ", ".found", "state 0 = free"), _i("DEX"), _i("BPL", ".loop"),
             _i("PLX"), _i("CLC", "", "no free slot"), _i("RTL"), ".found",
             _i("LDA", f"#{_h2(sid)}"), _i("STA.w", "$0E20,X", "sprite id"), _i("LDA", "#$08"),
             _i("STA.w", "$0DD0,X", "state: init"), _i("LDA.b", "$22"), _i("STA.w", "$0D10,X"),
             _i("LDA.b", "$23"), _i("STA.w", "$0D30,X"), _i("LDA.b", "$20"), _i("SEC"),
             _i("SBC", f"#{_h2(r.randint(0x08, 0x30))}"), _i("STA.w", "$0D00,X"), _i("LDA.b", "$21"), _i("SBC", "#$00"),
             _i("STA.w", "$0D20,X"), _i("TXY", "", "return new slot in Y"), _i("PLX"), _i("SEC", "", "success"), _i("RTL")]
    notes = [
        f"The routine scans slots {_h2(top)}..$00 for a state byte of zero, writes sprite id {_h2(sid)} and sets the state to $08 so the init code runs next frame.",
        "The spawn position is copied from Link's coordinates ($20-$23) with a small upward offset; the SBC #$00 propagates the borrow into the high byte.",
        "Carry is the return flag: set on success with the new slot in Y, clear when every slot is taken.",
    ]
    return _Task(f"spawn sprite {_h2(sid)} ({spr}) above Link in the first free slot", nm, lines, notes, True)


def _b_mul(g: _G) -> _Task:
    r = g.r
    factor = r.randint(3, 200)
    src = r.choice(("$00", "$02", "$04", "$0E"))
    out = r.choice(("$06", "$08", "$0A"))
    nm = r.choice(("Multiply", "Scale", "MulBy", "Product")) + r.choice(("", "8x8", "Const", "Table")) + str(factor)
    lines = [f"{nm}:", _i("SEP", "#$20"), _i("LDA.b", src), _i("STA", "$4202", "WRMPYA"), _i("LDA", f"#{_h2(factor)}"),
             _i("STA", "$4203", "WRMPYB, starts multiply"), _i("NOP"), _i("NOP"), _i("NOP"), _i("NOP", "", "8 cycles for the result"),
             _i("REP", "#$20"), _i("LDA", "$4216", "RDMPY 16-bit product"), _i("STA.b", out), _i("SEP", "#$20")]
    _ret(lines, r.random() < 0.5)
    notes = [
        f"The CPU's hardware multiplier takes two unsigned 8-bit operands; writing {_h2(factor)} to $4203 starts it.",
        "The product is ready 8 CPU cycles after the write; the four NOPs (2 cycles each) cover that wait before $4216/$4217 is read.",
        f"The 16-bit result is stored at {out}. The multiply is unsigned, so negative inputs must be handled separately.",
    ]
    return _Task(f"multiply the byte at {src} by {factor} using the hardware multiplier", nm, lines, notes, lines[-1].strip() == "RTL")


def _b_div(g: _G) -> _Task:
    r = g.r
    div = r.randint(2, 100)
    nm = r.choice(("Divide", "DivBy", "Split")) + str(div)
    lines = [f"{nm}:", _i("REP", "#$20"), _i("LDA.b", "$00", "16-bit dividend"), _i("STA", "$4204"), _i("SEP", "#$20"),
             _i("LDA", f"#{_h2(div)}"), _i("STA", "$4206", "divisor, starts divide")]
    lines += [_i("NOP")] * 8
    lines += [_i("REP", "#$20"), _i("LDA", "$4214", "quotient"), _i("STA.b", "$02"), _i("LDA", "$4216", "remainder"),
              _i("STA.b", "$04"), _i("SEP", "#$20")]
    _ret(lines, r.random() < 0.5)
    notes = [
        "The hardware divider takes a 16-bit dividend at $4204/$4205 and an 8-bit divisor at $4206.",
        "The result needs 16 cycles; eight NOPs are the simplest way to wait. Reading earlier returns garbage.",
        f"The quotient ends up at $02 and the remainder (modulo {div}) at $04.",
    ]
    return _Task(f"divide the 16-bit value at $00 by {div}, keeping both quotient and remainder", nm, lines, notes, lines[-1].strip() == "RTL")


def _b_tile_index(g: _G) -> _Task:
    r = g.r
    nm = r.choice(("GetTileIndex", "CoordsToTile", "LinkTilePos", "CalcMap16Index", "PosToMapOffset"))
    sprite = r.random() < 0.4
    ysrc, xsrc = ("$0D00,X", "$0D10,X") if sprite else ("$20", "$22")
    who = "the sprite's" if sprite else "Link's"
    shl = r.randint(1, 3)
    tmp, out = r.sample(("$00", "$02", "$04", "$06", "$08", "$0E"), 2)
    ld = "LDA.w" if sprite else "LDA.b"
    lines = [f"{nm}:"]
    if sprite:
        lines += [_i("PHX")]
    lines += [_i("REP", "#$20"), _i(ld, ysrc, "Y coordinate"), _i("AND", "#$01F0")]
    lines += [_i("ASL")] * shl
    lines += [_i("STA.b", tmp), _i(ld, xsrc, "X coordinate"), _i("AND", "#$01F0"), _i("LSR"), _i("LSR"), _i("LSR"),
              _i("ORA.b", tmp), _i("STA.b", out, "tile index"), _i("XBA"), _i("AND", "#$00FF"), _i("STA.b", tmp, "high byte for debugging"),
              _i("SEP", "#$20")]
    if sprite:
        lines += [_i("PLX")]
    _ret(lines, r.random() < 0.4)
    notes = [
        "Masking with $01F0 keeps the 16-pixel tile row/column within a 512-pixel area.",
        f"{'One ASL scales' if shl == 1 else str(shl) + ' ASLs scale'} the row for a {16 << shl}-byte-per-row table and three LSRs turn X pixels into a byte offset; ORA merges both.",
        "XBA swaps the accumulator halves so the high byte can be isolated with AND #$00FF.",
        f"The result is left at {out}; only A is widened, so X/Y keep their 8-bit width.",
    ]
    return _Task(f"convert {who} pixel coordinates into a tilemap index at {out}", nm, lines, notes, lines[-1].strip() == "RTL")


def _b_health(g: _G) -> _Task:
    r = g.r
    amt = r.choice((0x04, 0x08, 0x10, 0x18, 0x20, 0x28, 0x50))
    nm = r.choice(("Refill", "Give", "Restore", "Heal")) + "Health" + r.choice(("", "Small", "Big", "Fairy", str(amt // 8)))
    lines = [f"{nm}:", _i("SEP", "#$20"), _i("LDA.l", "$7EF36D", "current health"), _i("CLC"), _i("ADC", f"#{_h2(amt)}"),
             _i("CMP.l", "$7EF36C", "max health"), _i("BCC", "+"), _i("LDA.l", "$7EF36C", "clamp to max"), "+",
             _i("STA.l", "$7EF36D")]
    _ret(lines, True)
    hearts = amt / 8
    notes = [
        f"Health is stored in eighths of a heart, so {_h2(amt)} restores {hearts:g} heart{'s' if hearts != 1 else ''}.",
        "CLC before ADC makes sure a stale carry does not add an extra point.",
        "After `CMP.l $7EF36C`, carry set means the new value is >= the maximum, so the code falls through and clamps.",
    ]
    return _Task(f"add {_h2(amt)} to Link's health without going over the maximum", nm, lines, notes, True)


def _b_rupees(g: _G) -> _Task:
    r = g.r
    cost = r.choice((10, 20, 50, 80, 100, 150, 300, 500))
    nm = r.choice(("Buy", "Pay", "Spend")) + r.choice(("Item", "Upgrade", "Potion", "Ticket", "Shield")) + str(cost)
    lines = [f"{nm}:", _i("REP", "#$20"), _i("LDA.l", "$7EF360", "rupees"), _i("SEC"), _i("SBC", f"#{_h4(cost)}"),
             _i("BCC", ".not_enough"), _i("STA.l", "$7EF360"), _i("SEP", "#$20"), _i("SEC", "", "purchase ok"), _i("RTL"),
             ".not_enough", _i("SEP", "#$20"), _i("CLC"), _i("RTL")]
    notes = [
        f"With a 16-bit accumulator the price ({cost} = {_h4(cost)}) can be subtracted in one SBC.",
        "SEC is required before SBC on the 65816; after the subtraction a clear carry means the result went below zero.",
        "The counter is only written back when the player can afford it, and the carry flag tells the caller which path ran.",
    ]
    return _Task(f"charge {cost} rupees if the player can afford it", nm, lines, notes, True)


def _b_input(g: _G) -> _Task:
    r = g.r
    reg, bit, btn = r.choice((("$F4", 0x80, "B"), ("$F4", 0x40, "Y"), ("$F4", 0x20, "Select"), ("$F4", 0x10, "Start"),
                              ("$F6", 0x80, "A"), ("$F6", 0x40, "X"), ("$F6", 0x20, "L"), ("$F6", 0x10, "R")))
    target = g.label(r.choice(("Menu", "Link", "HUD", "Item")))
    nm = f"Check{btn}Press"
    lines = [f"{nm}:", _i("SEP", "#$20"), _i("LDA.b", reg, "new presses"), _i("AND", f"#{_h2(bit)}"), _i("BEQ", ".none"),
             _i("LDA.b", "$10"), _i("CMP", "#$07"), _i("BEQ", "+", "dungeon"), _i("CMP", "#$09"), _i("BNE", ".none", "not in overworld either"),
             "+", _i("JSL", target), ".none"]
    _ret(lines, True)
    notes = [
        f"{reg} holds the buttons pressed this frame only, so holding {btn} does not retrigger the action; bit {_h2(bit)} is {btn}.",
        "The module check ($10 = $07 dungeon or $09 overworld) stops the action from firing during menus or transitions.",
        f"`{target}` is called with JSL, so it must end with RTL.",
    ]
    return _Task(f"call {target} when the player presses {btn} in a dungeon or on the overworld", nm, lines, notes, True)


def _b_oos_item(g: _G) -> _Task:
    r = g.r
    item = r.choice(_ITEMS)
    hook = g.rom(hack=False)
    flag = 0x7EF300 + r.randrange(0x40, 0xA0)
    nops = r.randint(0, 2)
    nm = f"{item}_{r.choice(('Use', 'Update', 'Activate', 'Tick', 'CheckInput'))}"
    lines = [f"!{item}Flag = {_h6(flag)}", "", "pushpc", f"org {_h6(hook)}", _i("JSL", nm, "hook: replaces 4 bytes")]
    lines += [_i("NOP")] * nops
    lines += ["pullpc", "", f"{nm}:", _i("LDA.l", f"!{item}Flag"), _i("BEQ", ".vanilla", "item not owned")]
    effect = r.randrange(3)
    if effect == 0:
        lines += [_i("LDA.b", "$F6"), _i("AND", "#$40"), _i("BEQ", ".vanilla"), _i("LDA", f"#{_h2(r.randint(1, 0x30))}"),
                  _i("STA.w", "$0DF0,X"), _i("JSL", f"{item}_SpawnEffect")]
    elif effect == 1:
        lines += [_i("LDA.b", "$1A", "frame counter"), _i("AND", "#$1F"), _i("BNE", ".vanilla"),
                  _i("LDA.l", "$7EF36E", "magic"), _i("BEQ", ".vanilla"), _i("DEC"), _i("STA.l", "$7EF36E")]
    else:
        lines += [_i("LDA.b", "$5D", "Link state"), _i("CMP", f"#{_h2(r.randint(0, 0x1F))}"), _i("BNE", ".vanilla"),
                  _i("LDA", f"#{_h2(r.randint(0, 0x0F))}"), _i("STA.b", "$5D")]
    lines += [".vanilla", _i("LDA.b", "$3A", "replaced instruction"), _i("AND", "#$BF"), _i("RTL")]
    notes = [
        f"`pushpc` / `org {_h6(hook)}` / `pullpc` patches the vanilla code at {_h6(hook)} and then returns to the free-space position, so the new routine lands after the previous code.",
        f"The JSL overwrites four bytes of vanilla code; the overwritten instructions are re-executed at `.vanilla` before RTL.{' The NOP pads the hook to the original instruction boundary.' if nops else ''}",
        f"`!{item}Flag` is an Asar define, so the SRAM flag address can be moved in one place.",
    ]
    return _Task(f"hook the vanilla code at {_h6(hook)} so the {item} item works when its flag is set", nm, lines, notes, True)


def _b_oos_dungeon(g: _G) -> _Task:
    r = g.r
    dun = r.choice(_DUNGEONS)
    rooms = sorted(r.sample(range(0x00, 0x128), r.randint(2, 6)))
    nm = f"{dun}_{r.choice(('RoomFlags', 'CheckRoom', 'OpenShutters', 'SpawnKey', 'SetMusic'))}"
    lines = [f"{nm}:", _i("REP", "#$30"), _i("LDA.b", "$A0", "current room"), _i("LDX", f"#{_h4((len(rooms) - 1) * 2)}"), ".loop",
             _i("CMP.l", ".rooms,X"), _i("BEQ", ".match"), _i("DEX"), _i("DEX"), _i("BPL", ".loop"), _i("SEP", "#$30"), _i("RTL"),
             ".match", _i("SEP", "#$30"), _i("LDA", f"#{_h2(1 << r.randrange(8))}"), _i("TSB", f"$0{r.choice(('400', '401', '402', '403'))}", "room flag bits"),
             _i("RTL"), ".rooms", _i("dw", ", ".join(_h4(x) for x in rooms))]
    notes = [
        f"The room id at $A0 is compared against a small `dw` table of {len(rooms)} {dun} rooms using a 16-bit compare, because room ids go above $FF.",
        "`CMP.l .rooms,X` reads the table with long addressing, so it works no matter what the data bank is.",
        "TSB sets the chosen bit without touching the other flags in the byte.",
    ]
    return _Task(f"set a room flag when Link is in one of {len(rooms)} {dun} rooms", nm, lines, notes, True)


def _b_asar_macro(g: _G) -> _Task:
    r = g.r
    val = r.randrange(0, 16)
    nm = r.choice(("SetBrightness", "WaitVBlank", "LoadIndex", "SetSpriteTimer"))
    free = g.rom()
    lines = ["lorom", "", f"!Brightness = {_h2(val)}", f"!Timer = {_h2(r.randint(8, 0x40))}", "",
             "macro set_bright(value)", _i("LDA", "#<value>"), _i("STA", "$2100"), "endmacro", "",
             f"org {_h6(free)}", f"{nm}:", _i("SEP", "#$20"), _i("%set_bright(!Brightness)")]
    if r.random() < 0.5:
        lines += [".wait", _i("LDA", "$4212", "HVBJOY"), _i("BPL", ".wait", "until vblank")]
    lines += [_i("LDA", "#!Timer"), _i("STA.w", "$0DF0,X"), _i("RTL"), f"warnpc {_h6((free & 0xFF0000) | 0xFFFF)}"]
    notes = [
        "`!Name = value` creates an Asar define; `#!Timer` expands to an immediate operand before assembly.",
        "Macro arguments are referenced as `<value>` inside the body and the macro is invoked with `%name(args)`.",
        "`warnpc` makes Asar warn if the code runs past the end of the bank, a cheap guard for free-space overflows.",
    ]
    return _Task("show Asar defines, a macro and warnpc in one small routine", nm, lines, notes, True)


_BUILDERS: dict[str, tuple[Callable[[_G], _Task], ...]] = {
    "alttp_routines": (_b_health, _b_rupees, _b_input, _b_tile_index, _b_sprite_spawn),
    "sprite_logic": (_b_sprite_main, _b_sprite_move, _b_sprite_spawn),
    "dma_hdma": (_b_dma_vram, _b_dma_cgram, _b_hdma),
    "ppu_registers": (_b_fade, _b_bgmode, _b_dma_cgram),
    "memory_map": (_b_wram_clear, _b_mvn_copy),
    "math_routines": (_b_mul, _b_div, _b_tile_index, _b_rupees),
    "oos_items": (_b_oos_item, _b_oos_item, _b_health),
    "oos_dungeons": (_b_oos_dungeon, _b_sprite_spawn, _b_sprite_main),
    "asar_syntax": (_b_asar_macro, _b_wram_clear, _b_oos_item),
    "debugging": (_b_sprite_move, _b_rupees, _b_wram_clear),
}
# Ordered de-duplication (a set would order by object id, which differs between processes).
_ALL_BUILDERS = tuple(dict.fromkeys(b for bs in _BUILDERS.values() for b in bs))

# --------------------------------------------------------------------------------------------
# Prose pools
# --------------------------------------------------------------------------------------------

_WRITE_TPL = (
    "Write a 65816 routine that {does}.",
    "Write a 65816 routine to {do}.",
    "Write an Asar-compatible subroutine `{name}` that should {do}.",
    "Implement `{name}` for the SNES. It needs to {do}.",
    "I need some 65816 assembly to {do}. Can you write it?",
    "Create a {call}-callable routine named {name} that will {do}.",
    "Using Asar syntax, write code to {do}. Keep register widths explicit.",
    "How would I {do} in 65816 assembly for A Link to the Past?",
    "Give me a small routine to {do}, with comments.",
    "Write {name}: {do}. Assume it is called from the main game loop.",
)
_EXPLAIN_TPL = (
    "Explain what this code does.",
    "What does the following 65816 routine do, step by step?",
    "Walk me through this snippet.",
    "Explain this routine and point out anything unusual about the register widths.",
    "Can you describe what `{name}` does?",
    "I found this in a ROM hack. What is it doing?",
    "Summarise the behaviour of this assembly.",
)
_FIX_TPL = (
    "Fix the bug in this routine.",
    "This code crashes or misbehaves. Find and fix the bug.",
    "Fix the bug in `{name}`; it is supposed to {do}.",
    "Something is wrong with this routine that should {do}. What is it?",
    "Debug this 65816 code and give me a corrected version.",
)
_COMMENT_TPL = (
    "Add comments to this code.",
    "Annotate each important line of this routine.",
    "Document this routine with inline `;` comments.",
)
_CONVERT_TPL = (
    "Convert this to use 16-bit accumulator.",
    "Rewrite this loop with a 16-bit accumulator so it runs faster.",
    "Convert this routine to REP #$20 mode.",
    "Can this be done with 16-bit A instead of byte writes?",
)
_INTROS = (
    "Here's a routine that {does}.",
    "Below is one way to {do}.",
    "Sure. This version {does} and keeps the register widths explicit.",
    "The routine below {does}.",
    "Here is an Asar-compatible implementation.",
    "This is a compact approach:",
    "",
)
_OUTRO_TIPS = (
    "Asar does not track the M and X flags for you, so every immediate operand has to match the width set by the last REP/SEP.",
    "If you call it from code that expects 8-bit registers, keep the final SEP in place.",
    "Test it in an emulator with a debugger (Mesen-S or bsnes-plus) and watch the addresses it writes.",
    "Place it in free space and make sure nothing else is assembled at the same address.",
    "Keep the routine in the same bank as its tables if you use `.w` addressing for them.",
    "The comments are optional; Asar ignores everything after `;`.",
)
_CONTEXT_INPUTS = (
    "The routine is called from the sprite main loop with X = sprite slot and the data bank set to the program bank.",
    "Free space for this patch starts at {rom}.",
    "We are in NMI, forced blank is on, and A/X/Y are 8-bit on entry.",
    "Registers are 16-bit on entry (REP #$30 was done by the caller).",
    "This goes in the Oracle of Secrets hack, bank {bank}, next to the other custom routines.",
    "Target assembler: Asar 1.9, LoROM.",
    "Keep it under {n} bytes; it has to fit in a small gap.",
)

_OP_SHORT: dict[str, str] = {
    "LDA": "load A from {a}", "STA": "store A to {a}", "LDX": "load X from {a}", "LDY": "load Y from {a}",
    "STX": "store X to {a}", "STZ": "write zero to {a}", "INC": "increment {a}", "DEC": "decrement {a}",
    "INX": "X += 1", "INY": "Y += 1", "DEX": "X -= 1", "DEY": "Y -= 1", "CMP": "compare A with {a}",
    "CPX": "compare X with {a}", "BNE": "branch to {a} if not equal (Z clear)", "BEQ": "branch to {a} if equal (Z set)",
    "BCC": "branch to {a} if carry clear", "BCS": "branch to {a} if carry set", "BPL": "branch to {a} while the result is positive",
    "BMI": "branch to {a} if negative", "BRA": "always branch to {a}", "BRL": "long branch to {a}", "JSR": "call {a} (2-byte return address)",
    "JSL": "call {a} long (3-byte return address)", "JMP": "jump to {a}", "RTS": "return to a JSR caller",
    "RTL": "return to a JSL caller", "REP": "clear status bits {a} (widen registers)", "SEP": "set status bits {a} (narrow registers)",
    "PHA": "push A", "PLA": "pull A", "PHB": "save the data bank", "PLB": "restore the data bank", "PHK": "push the program bank",
    "PHX": "save X", "PLX": "restore X", "PHP": "save the status flags", "PLP": "restore the status flags", "TAX": "copy A into X",
    "TXA": "copy X into A", "TAY": "copy A into Y", "TXY": "copy X into Y", "XBA": "swap the two halves of A",
    "ASL": "shift left (x2)", "LSR": "shift right (/2)", "ROL": "rotate left through carry", "AND": "mask A with {a}",
    "ORA": "OR {a} into A", "EOR": "flip bits of A with {a}", "ADC": "add {a} plus carry", "SBC": "subtract {a} with borrow",
    "CLC": "clear carry before adding", "SEC": "set carry before subtracting", "MVN": "block move, banks {a}",
    "NOP": "wait 2 cycles", "TSB": "set bits of {a} from A", "WAI": "wait for an interrupt",
}


def _strip_comments(lines: list[str]) -> list[str]:
    out = []
    for ln in lines:
        code = ln.split(";", 1)[0].rstrip()
        if code or not ln.strip():
            out.append(code)
    return out


def _describe(line: str) -> str | None:
    code = line.split(";", 1)[0].strip()
    if not code or not line.startswith("    ") or code.startswith(("db", "dw", "dl", "%")):
        return None
    op, _, arg = code.partition(" ")
    base = op.split(".", 1)[0]
    desc = _OP_SHORT.get(base)
    if desc is None:
        return None
    text = desc.format(a=f"`{arg}`" if arg else "A")
    if arg.startswith("#"):
        text = text.replace(" from ", " with ")
    key = arg.split(",", 1)[0]
    if len(key) == 3:
        key = "$00" + key[1:]
    note = _ADDR_NOTES.get(key)
    if note:
        text += f" - {note}"
    return f"- `{code}`: {text}"


def _fence(lines: list[str], lang: str = "asm") -> str:
    return f"```{lang}\n" + "\n".join(lines) + "\n```"


# --------------------------------------------------------------------------------------------
# Record kinds for code domains
# --------------------------------------------------------------------------------------------


def _fmt(tpl: str, t: _Task) -> str:
    do = t.do
    return tpl.format(do=do, does=_third_person(do), name=t.name,
                      call="JSL" if t.far else "JSR")


def _rec_write(g: _G, t: _Task, with_context: bool) -> tuple[str, str | None, str]:
    r = g.r
    instr = _fmt(r.choice(_WRITE_TPL), t)
    inp = None
    if with_context:
        inp = r.choice(_CONTEXT_INPUTS).format(rom=_h6(g.rom()), bank=_h2(r.randrange(0x20, 0x40)), n=r.choice((24, 32, 48, 64)))
    parts = []
    intro = _fmt(r.choice(_INTROS), t)
    if intro:
        parts.append(intro)
    parts.append(_fence(t.lines))
    k = r.randint(2, len(t.notes))
    parts.append(" ".join(t.notes[:k]))
    if r.random() < 0.35:
        hook = g.rom(hack=False)
        call = "JSL" if t.far else "JSR"
        parts.append(f"To call it from vanilla code, patch a {call} in with pushpc/pullpc:")
        parts.append(_fence(["pushpc", f"org {_h6(hook)}", _i(call, t.name), "pullpc"]))
    if r.random() < 0.5:
        parts.append(r.choice(_OUTRO_TIPS))
    return instr, inp, "\n\n".join(parts)


def _rec_explain(g: _G, t: _Task) -> tuple[str, str | None, str]:
    r = g.r
    instr = _fmt(r.choice(_EXPLAIN_TPL), t)
    code = t.lines if r.random() < 0.5 else _strip_comments(t.lines)
    inp = _fence(code) if r.random() < 0.6 else "\n".join(code)
    parts = [f"This routine {'(`' + t.name + '`) ' if r.random() < 0.5 else ''}{_third_person(t.do)}."]
    bullets = []
    for ln in t.lines:
        d = _describe(ln)
        if d:
            bullets.append(d)
    if bullets:
        if len(bullets) > 8:
            start = r.randrange(0, len(bullets) - 7)
            bullets = bullets[start:start + r.randint(4, 8)]
        parts.append("Key lines:\n" + "\n".join(bullets))
    parts.append(" ".join(t.notes))
    return instr, inp, "\n\n".join(parts)


# (predicate on stripped code line, mutation, explanation)
def _bug_variants(lines: list[str]) -> list[tuple[int, str, str, str]]:
    """Candidate bugs: (line index, replacement or '' to delete, label, why)."""
    out = []
    for idx, ln in enumerate(lines):
        code = ln.split(";", 1)[0].strip()
        nxt = lines[idx + 1].split(";", 1)[0].strip() if idx + 1 < len(lines) else ""
        if code == "CLC" and nxt.startswith("ADC"):
            out.append((idx, "", "missing CLC", "ADC always adds the carry flag. Without `CLC` the sum is one too high whenever carry was left set by an earlier compare or shift."))
        elif code == "SEC" and nxt.startswith("SBC"):
            out.append((idx, "", "missing SEC", "SBC subtracts the inverted carry as a borrow. Without `SEC` the result is one too low whenever carry happened to be clear."))
        elif code == "PLB":
            out.append((idx, "", "missing PLB", "The data bank pushed with PHB is never pulled, so the stack is one byte off and the RTS/RTL returns to a garbage address."))
        elif code == "PLX":
            out.append((idx, "", "missing PLX", "X is pushed but not pulled on this path, which leaves an extra byte on the stack and crashes on return."))
        elif code == "RTL" and idx == len(lines) - 1:
            out.append((idx, _i("RTS"), "RTS instead of RTL", "The routine is entered with JSL, which pushes a 3-byte return address. RTS only pulls two bytes, so execution continues at the wrong bank and the stack is unbalanced."))
        elif code.startswith("BPL") and lines[idx - 1].strip() in ("DEX", "DEY"):
            out.append((idx, ln.replace("BPL", "BNE"), "BNE instead of BPL", "With `BNE` the loop exits as soon as the index reaches zero, so the entry at offset 0 is never processed."))
        elif code.startswith("SEP") and idx >= len(lines) - 3 and any("REP" in x for x in lines[:idx]):
            out.append((idx, "", "missing SEP", "The routine returns with a 16-bit accumulator/index. The caller's next `LDA #$xx` is assembled as two bytes but executed as three, so the CPU runs off into the wrong instructions."))
    return out


def _rec_fix(g: _G, t: _Task) -> tuple[str, str | None, str] | None:
    r = g.r
    bugs = _bug_variants(t.lines)
    if not bugs:
        return None
    idx, repl, label, why = r.choice(bugs)
    buggy = list(t.lines)
    if repl:
        buggy[idx] = repl
    else:
        del buggy[idx]
    fixed = list(t.lines)
    orig = fixed[idx].split(";", 1)[0].rstrip()
    fixed[idx] = orig.ljust(28) + f"; fixed ({label})"
    instr = _fmt(r.choice(_FIX_TPL), t)
    inp = _fence(buggy) if r.random() < 0.7 else "\n".join(buggy)
    parts = [f"The problem is a {label}.", why, "Corrected version:", _fence(fixed)]
    if r.random() < 0.5:
        parts.append(t.notes[0])
    return instr, inp, "\n\n".join(parts)


def _rec_comment(g: _G, t: _Task) -> tuple[str, str | None, str]:
    r = g.r
    bare = _strip_comments(t.lines)
    annotated = []
    for ln in t.lines:
        if ";" in ln:
            annotated.append(ln)
            continue
        d = _describe(ln)
        if d and r.random() < 0.6:
            annotated.append(ln.ljust(28) + "; " + d.split(": ", 1)[1].replace("`", ""))
        else:
            annotated.append(ln)
    instr = r.choice(_COMMENT_TPL)
    inp = _fence(bare) if r.random() < 0.5 else "\n".join(bare)
    return instr, inp, "\n\n".join([_fence(annotated), f"Overall the routine will {t.do}. " + t.notes[0]])


def _rec_convert(g: _G) -> tuple[str, str | None, str]:
    r = g.r
    addr = (r.choice((0x7E, 0x7F)) << 16) | r.randrange(0x2000, 0xE000, 0x20)
    size = r.choice((0x20, 0x40, 0x80, 0x100, 0x200))
    name = r.choice(("Fill", "Clear", "Copy", "Mirror")) + r.choice(("Row", "Buffer", "Table", "Attr"))
    val = r.randrange(0, 0x100)
    kind = r.randrange(2)
    if kind == 0:
        old = [f"{name}:", _i("SEP", "#$20"), _i("REP", "#$10"), _i("LDA", f"#{_h2(val)}"), _i("LDX", f"#{_h4(size - 1)}"),
               ".loop", _i("STA.l", f"{_h6(addr)},X"), _i("DEX"), _i("BPL", ".loop"), _i("SEP", "#$10"), _i("RTL")]
        new = [f"{name}:", _i("REP", "#$30", "16-bit A and X/Y"), _i("LDA", f"#${val:02X}{val:02X}", "value in both bytes"),
               _i("LDX", f"#{_h4(size - 2)}"), ".loop", _i("STA.l", f"{_h6(addr)},X", "writes 2 bytes"), _i("DEX"), _i("DEX"),
               _i("BPL", ".loop"), _i("SEP", "#$30", "back to 8-bit for the caller"), _i("RTL")]
        why = [f"With a 16-bit accumulator each store writes two bytes, so the loop runs {size // 2} times instead of {size}.",
               f"The immediate becomes a word (`#${val:02X}{val:02X}`) so both bytes get the fill value, and X steps by 2 (two DEX).",
               "REP #$30 must come before the `LDA #$xxxx`; otherwise Asar's 3-byte instruction is executed as a 2-byte one."]
    else:
        src = (0x7E << 16) | r.randrange(0x0100, 0x1F00, 2)
        old = [f"{name}:", _i("SEP", "#$20"), _i("LDA.l", _h6(src)), _i("CLC"), _i("ADC", f"#{_h2(val)}"), _i("STA.l", _h6(src)),
               _i("LDA.l", _h6(src + 1)), _i("ADC", "#$00", "carry into high byte"), _i("STA.l", _h6(src + 1)), _i("RTL")]
        new = [f"{name}:", _i("REP", "#$20"), _i("LDA.l", _h6(src)), _i("CLC"), _i("ADC", f"#{_h4(val)}"), _i("STA.l", _h6(src)),
               _i("SEP", "#$20"), _i("RTL")]
        why = ["The 8-bit version adds the low byte and then propagates the carry into the high byte by hand.",
               "With REP #$20 one ADC handles the full 16-bit value, and the carry chain is done by the CPU.",
               "Remember the SEP #$20 before returning if the caller expects an 8-bit accumulator."]
    instr = r.choice(_CONVERT_TPL)
    inp = _fence(old) if r.random() < 0.6 else "\n".join(old)
    return instr, inp, "\n\n".join(["Here is the 16-bit version:", _fence(new), " ".join(why)])


# Single-instruction questions -------------------------------------------------------------

_MODES = {
    "imm": ("LDA", "LDX", "LDY", "CMP", "CPX", "AND", "ORA", "EOR", "ADC", "SBC"),
    "dp": ("LDA", "STA", "LDX", "LDY", "STZ", "INC", "DEC", "CMP", "AND", "ORA", "ADC", "SBC", "ASL", "LSR"),
    "abs": ("LDA", "STA", "LDX", "LDY", "STZ", "INC", "DEC", "CMP", "AND", "ORA", "EOR", "ADC", "SBC"),
    "absx": ("LDA", "STA", "LDY", "STZ", "INC", "DEC", "CMP", "AND", "ORA", "ADC", "SBC", "ASL", "LSR"),
    "absy": ("LDA", "STA", "LDX", "CMP", "AND", "ORA", "ADC", "SBC"),
    "long": ("LDA", "STA", "CMP", "AND", "ORA", "EOR", "ADC", "SBC"),
    "longx": ("LDA", "STA", "CMP", "ADC", "SBC"),
    "dpiy": ("LDA", "STA", "CMP", "ADC", "SBC", "AND"),
    "dpily": ("LDA", "STA", "CMP", "ADC", "SBC"),
    "sr": ("LDA", "STA", "CMP", "ADC", "AND"),
}
_MODE_NAMES = tuple(_MODES)
_MODE_DESC = {
    "imm": "immediate addressing: the operand is encoded in the instruction itself",
    "dp": "direct-page addressing: the one-byte operand is added to the D register (D is $0000 in most of ALttP, so it hits $00:00xx)",
    "abs": "absolute addressing: a 16-bit address combined with the data bank register (DB)",
    "absx": "absolute indexed by X: the effective address is DB:address + X",
    "absy": "absolute indexed by Y: the effective address is DB:address + Y",
    "long": "absolute long addressing: a full 24-bit address that ignores DB",
    "longx": "absolute long indexed by X: 24-bit base address plus X, independent of DB",
    "dpiy": "direct-page indirect indexed: a 16-bit pointer is read from the direct page, combined with DB, then Y is added",
    "dpily": "direct-page indirect long indexed: a 24-bit pointer is read from three direct-page bytes, then Y is added",
    "sr": "stack-relative addressing: the address is S plus the offset in bank $00, so `$01,S` is the last byte pushed",
}
_OP_Q = {
    "LDA": ("loads the accumulator from", "N and Z"), "STA": ("stores the accumulator to", ""),
    "LDX": ("loads X from", "N and Z"), "LDY": ("loads Y from", "N and Z"), "STZ": ("writes zero to", ""),
    "INC": ("increments the value at", "N and Z"), "DEC": ("decrements the value at", "N and Z"),
    "CMP": ("compares the accumulator with", "N, Z and C"), "CPX": ("compares X with", "N, Z and C"),
    "AND": ("ANDs the accumulator with", "N and Z"), "ORA": ("ORs the accumulator with", "N and Z"),
    "EOR": ("exclusive-ORs the accumulator with", "N and Z"), "ADC": ("adds, with carry, to the accumulator", "N, V, Z and C"),
    "SBC": ("subtracts, with borrow, from the accumulator", "N, V, Z and C"), "ASL": ("shifts left the value at", "N, Z and C"),
    "LSR": ("shifts right the value at", "N, Z and C"),
}
_Q_TPL = (
    "What does `{ins}` do?",
    "Explain the instruction `{ins}` in the context of ALttP.",
    "In 65816 assembly, what is the effect of `{ins}`?",
    "What addressing mode does `{ins}` use and what does it touch?",
    "Break down `{ins}` for me.",
)


def _rec_question(g: _G) -> tuple[str, str | None, str]:
    r = g.r
    mode = r.choice(_MODE_NAMES)
    op = r.choice(_MODES[mode])
    suffix = ""
    known = None
    if mode == "imm":
        wide = r.random() < 0.4
        operand = f"#{_h4(r.randrange(0, 0x10000))}" if wide else f"#{_h2(r.randrange(0, 0x100))}"
    elif mode == "dp":
        d = r.choice(_DP_KNOWN) if r.random() < 0.6 else _h2(r.randrange(0, 0x100))
        operand, suffix, known = d, r.choice(("", ".b")), "$00" + d[1:]
    elif mode in ("abs", "absx", "absy"):
        if r.random() < 0.5:
            a = r.choice(_SPR_TABLES)
        else:
            a = _h4(r.choice(_HW_LIST)) if op in ("STA", "STZ", "LDA") and r.random() < 0.5 else _h4(r.randrange(0x0100, 0x2000))
        known = a
        operand = a + {"abs": "", "absx": ",X", "absy": ",Y"}[mode]
        suffix = r.choice(("", ".w", ".w"))
    elif mode in ("long", "longx"):
        a = r.choice(_LONG_KNOWN) if r.random() < 0.6 else _h6(0x7F0000 | r.randrange(0, 0x10000))
        known = a
        operand = a + ("" if mode == "long" else ",X")
        suffix = r.choice(("", ".l"))
    elif mode == "dpiy":
        operand = f"({_h2(r.randrange(0, 0x10, 1))}),Y"
    elif mode == "dpily":
        operand = f"[{_h2(r.randrange(0, 0x10, 1))}],Y"
    else:
        operand = f"{_h2(r.randint(1, 8))},S"
    ins = f"{op}{suffix} {operand}"
    verb, flags = _OP_Q[op]
    parts = [f"`{ins}` {verb} `{operand}` using {_MODE_DESC[mode]}."]
    if known:
        note = _ADDR_NOTES.get(known)
        if note is None and known.startswith("$") and len(known) == 5:
            hw = _HWREGS.get(int(known[1:], 16))
            if hw:
                note = f"the PPU/CPU register {hw}"
        if note:
            parts.append(f"In ALttP, `{known}` is {note}.")
    if mode == "absx" and known in _SPR_TABLES:
        parts.append("Because sprite code keeps the slot number in X, `,X` selects this sprite's entry in a 16-entry table.")
    if flags:
        parts.append(f"It updates the {flags} flag{'s' if ' ' in flags else ''}.")
    else:
        parts.append("Stores do not change any flags.")
    if op in ("LDX", "LDY", "CPX"):
        parts.append("Its width follows the X flag: after `SEP #$10` it moves one byte, after `REP #$10` two bytes.")
    else:
        parts.append("Its width follows the M flag: after `SEP #$20` it works on one byte, after `REP #$20` on two (the second at address+1).")
    if suffix:
        parts.append({".b": "The `.b` suffix forces Asar to use the one-byte direct-page form.",
                      ".w": "The `.w` suffix forces Asar to emit a 16-bit absolute operand even if the value would fit in the direct page.",
                      ".l": "The `.l` suffix forces the 24-bit long form."}[suffix])
    text = " ".join(parts)
    if r.random() < 0.4:
        ex = [_i("SEP", "#$20"), _i(op + suffix, operand)]
        if op in ("CMP", "CPX"):
            ex += [_i("BEQ", ".equal"), _i("BCS", ".greater_or_equal")]
        text += "\n\nExample in context:\n\n" + _fence(ex)
    return r.choice(_Q_TPL).format(ins=ins), None, text


def _rec_inline_explain(g: _G, t: _Task) -> tuple[str, str | None, str]:
    r = g.r
    body = [ln for ln in _strip_comments(t.lines) if ln.startswith("    ") and _describe(ln)]
    start = r.randrange(0, max(1, len(body) - 4))
    snippet = [ln.strip() for ln in body[start:start + r.randint(3, 5)]]
    instr = r.choice(("What does `{c}` do?", "Explain: `{c}`", "Why would a routine do `{c}`?")).format(c=" : ".join(snippet))
    bullets = [d for d in (_describe("    " + s) for s in snippet) if d]
    out = "Read left to right (Asar lets you chain instructions with ` : `):\n" + "\n".join(bullets or ["- " + s for s in snippet])
    out += "\n\n" + f"This fragment comes from a routine that would {t.do}. " + r.choice(t.notes)
    return instr, None, out


# Asar Q&A ------------------------------------------------------------------------------------


def _rec_asar_qa(g: _G) -> tuple[str, str | None, str]:
    r = g.r
    topic = r.randrange(7)
    free = g.rom()
    if topic == 0:
        nm = r.choice(("SpriteSpeed", "MaxHearts", "FreeRam", "CustomFlag", "MenuCursor"))
        val = _h2(r.randrange(0, 0x100)) if r.random() < 0.5 else _h6(0x7E0000 | r.randrange(0x0100, 0x2000))
        return (f"How do I define a constant like {nm} in Asar and use it?", None,
                "Use a define. Defines start with `!` and are plain text substitution:\n\n"
                + _fence([f"!{nm} = {val}", "", _i("LDA", f"!{nm}" if len(val) > 3 else f"#!{nm}"), _i("STA.w", "$0DF0,X")])
                + f"\n\nBecause it is text substitution, put the `#` in the instruction for immediates, not in the define, so the same define also works as an address. Defines can be redefined later in the file, and `!{nm} ?= value` only sets it if it is not defined yet.")
    if topic == 1:
        hook = g.rom(hack=False)
        return ("What is the difference between `org` and `pushpc`/`pullpc` in Asar?", None,
                "`org` moves the assembly position to a new address and stays there. `pushpc` saves the current position and `pullpc` restores it, so you can patch a vanilla address in the middle of a file and carry on in free space:\n\n"
                + _fence([f"org {_h6(free)}", "MyRoutine:", _i("LDA", "#$01"), _i("RTL"), "", "pushpc", f"org {_h6(hook)}", _i("JSL", "MyRoutine"), "pullpc", "", "NextRoutine:", _i("RTL", "", "assembled right after MyRoutine")])
                + "\n\nThis keeps hooks next to the code they call, which is how most hack sources are organised.")
    if topic == 2:
        return ("How do `db`, `dw` and `dl` differ in Asar?", None,
                "They emit data instead of instructions: `db` writes bytes, `dw` 16-bit little-endian words and `dl` 24-bit long values.\n\n"
                + _fence(["Pointers:", _i("dl", "RoutineA, RoutineB", "3 bytes each"), "Speeds:",
                          _i("db", ", ".join(_h2(r.randrange(0, 0x40)) for _ in range(r.randint(4, 8)))),
                          "Offsets:", _i("dw", ", ".join(_h4(r.randrange(0, 0x1000)) for _ in range(r.randint(3, 6))))])
                + "\n\n`dl` is handy for JML/JSL jump tables because it stores the bank as well.")
    if topic == 3:
        rt = g.label()
        tbl = r.choice(_SPR_TABLES)
        return (r.choice(("How do sublabels and `+`/`-` labels work in Asar?", f"In `{rt}`, what do `.loop` and `+` refer to?",
                          "Explain Asar's local labels (`.name`) and anonymous labels (`+`, `-`).")), None,
                "A label starting with `.` is a sublabel scoped to the last normal label, so every routine can have its own `.loop`. `+` and `-` are anonymous labels: `BRA +` jumps to the next `+`, `BNE -` to the previous `-`, and `++`/`--` skip one further.\n\n"
                + _fence([f"{rt}:", _i("LDX", f"#{_h2(r.choice((0x0F, 0x0B, 0x07)))}"), ".loop", _i("LDA.w", f"{tbl},X"), _i("BEQ", "+"),
                          _i(r.choice(("INC.w", "DEC.w", "STZ.w")), f"{r.choice(_SPR_TABLES)},X"), "+", _i("DEX"), _i("BPL", ".loop"), _i("RTL")])
                + f"\n\nOther routines can reach the sublabel as `{rt}_loop`.")
    if topic == 4:
        dp = r.choice(_DP_KNOWN) if r.random() < 0.3 else _h2(r.randrange(0, 0x100))
        op = r.choice(("LDA", "LDA", "STA", "ADC", "CMP", "ORA"))
        return (r.choice((f"When do I need the `.b`, `.w` and `.l` suffixes in Asar (e.g. for `{op} {dp}`)?", f"Why does `{op} {dp}` assemble differently from `{op}.w $00{dp[1:]}`?",
                          f"Should I write `{op}.l $7E00{dp[1:]}` or `{op} {dp}` in sprite code?")), None,
                "Asar picks the addressing size from the value, which is not always what you want. `.b` forces direct page (1 byte), `.w` absolute (2 bytes), `.l` long (3 bytes):\n\n"
                + _fence([_i(op + ".b", dp, "direct page, 2 bytes"), _i(op + ".w", f"$00{dp[1:]}", "absolute, uses DB, 3 bytes"), _i(op + ".l", f"$7E00{dp[1:]}", "long, ignores DB, 4 bytes")])
                + "\n\nUse `.l` when the data bank may not be $7E, e.g. in sprite code where DB equals the program bank.")
    if topic == 5:
        files = r.sample(("sprites/main.asm", "items/custom.asm", "hooks.asm", "defines.asm", "dungeons/rooms.asm", "hud.asm", "gfx/font.bin"), 3)
        return ("How should I split a hack into multiple files with Asar?", None,
                "Use `incsrc` for source files and `incbin` for binary data. Paths are relative to the including file:\n\n"
                + _fence(["lorom", f"incsrc \"{files[0] if files[0].endswith('.asm') else 'defines.asm'}\"", f"org {_h6(free)}",
                          f"incsrc \"{files[1] if files[1].endswith('.asm') else 'main.asm'}\"", "Font:", "incbin \"gfx/font.bin\""])
                + "\n\nPut defines first so every later file can see them.")
    return ("How do I make sure my code does not overflow its free space in Asar?", None,
            "Put a `warnpc` after the block. Asar prints a warning if the current position is past the given address:\n\n"
            + _fence([f"org {_h6(free)}", "incsrc \"custom_items.asm\"", f"warnpc {_h6((free & 0xFF0000) | 0xFFFF)}"])
            + "\n\nAsar 1.9 also has `assert`, which stops assembly with a message when a condition fails.")


# --------------------------------------------------------------------------------------------
# Debugging / memory-watch records (nerv_watcher flavour)
# --------------------------------------------------------------------------------------------


def _decode_p(p: int) -> str:
    names = "NVMXDIZC"
    return "".join(n if p & (0x80 >> i) else n.lower() for i, n in enumerate(names))


def _rec_debug(g: _G, with_input: bool) -> tuple[str, str | None, str]:
    r = g.r
    kind = r.randrange(5)
    frame = r.randrange(100, 90000)
    pc = _h6(g.rom(hack=r.random() < 0.5))
    if kind == 0:
        slot = r.randrange(16)
        old, new = r.sample(sorted(_SPR_STATE_NAMES), 2)
        log = "\n".join(f"frame {frame + i:06d}  $7E{0x0DD0 + slot:04X}: {_h2(old if i < 2 else new)[1:]}  PC={pc}" for i in range(4))
        q = f"A memory watch on the sprite state of slot {slot} (${0x7E0DD0 + slot:06X}) changes from {_h2(old)} to {_h2(new)}. What happened?"
        out = [f"$0DD0,X is the sprite state table, so the write at {pc} moved slot {slot} from {_h2(old)} ({_SPR_STATE_NAMES[old]}) to {_h2(new)} ({_SPR_STATE_NAMES[new]}).",
               f"Set a write breakpoint on ${0x7E0DD0 + slot:06X} with the condition `value == {_h2(new)}` and look at the call stack: it tells you which routine did it.",
               "If the change is unexpected, the usual culprit is code running with the wrong X (another slot number) or a routine that forgot to preserve X."]
    elif kind == 1:
        dmg = r.choice((0x08, 0x10, 0x04))
        spr = r.choice(_SPRITES)
        q = f"Link's health at $7EF36D drops by {_h2(dmg * 2)} instead of {_h2(dmg)} when my custom {spr} touches him (around frame {frame}). How do I debug this?"
        log = "\n".join(f"frame {frame + i:06d}  $7EF36D: {_h2(0x30 - dmg * i)[1:]}" for i in range(3))
        out = [f"A double decrement (two {_h2(dmg)} hits on frames {frame} and {frame + 1}) means the damage routine runs twice before the invincibility timer is set.",
               "Watch $7E031F (Link's invincibility timer) alongside $7EF36D: if it is still zero on the second hit, the contact check is not honouring it.",
               f"Fix: check the timer before the {spr}'s contact routine applies damage, or only run the contact check every other frame.",
               _fence([_i("LDA.w", "$031F"), _i("BNE", ".skip", "still flashing"), _i("JSL", "Sprite_CheckDamageToPlayer"), ".skip"])]
    elif kind == 2:
        s0 = r.randrange(0x01E0, 0x01FF)
        mins = r.randint(1, 20)
        culprit = g.label()
        q = r.choice(("My hack slowly corrupts memory and crashes after {m} minute{p}. The stack pointer watch looks like this.",
                      "After about {m} minute{p} of play the game freezes. S keeps shrinking; what should I look for?",
                      "Stack pointer drifts down over {m} minute{p} and then the game crashes near {pc}.")).format(m=mins, p="s" if mins > 1 else "", pc=pc)
        log = "\n".join(f"frame {frame + i * 60:06d}  S=${s0 - i:04X}" for i in range(5))
        out = ["S drops by one byte every second while it should be stable between frames, so one path pushes a byte it never pulls.",
               "Typical causes: a PHB/PHX/PHA on a branch that returns early, or a JSL'd routine that returns with RTS.",
               f"Put a breakpoint on the main loop entry, step over each JSL, and compare S before and after each call: the routine where it changes is the leak. Start with recently added hooks such as `{culprit}`.",
               f"In this log S went from ${s0:04X} to ${s0 - 4:04X}; once it falls into the direct page or the WRAM buffers below $0200 the corruption becomes visible."]
    elif kind == 3:
        p = r.randrange(0, 0x100)
        q = f"The game crashed at {pc} with P=${p:02X}. What do the flags tell me?"
        log = f"BRK at {pc}  A={_h4(r.randrange(0, 0x10000))} X={_h4(r.randrange(0, 0x100))} Y={_h4(r.randrange(0, 0x100))} S=$01{r.randrange(0xC0, 0xFF):02X} P=${p:02X} ({_decode_p(p)})"
        out = [f"P=${p:02X} decodes to {_decode_p(p)} (uppercase = set).",
               f"M is {'set: the accumulator is 8-bit' if p & 0x20 else 'clear: the accumulator is 16-bit'}, X is {'set: index registers are 8-bit' if p & 0x10 else 'clear: index registers are 16-bit'}.",
               "A BRK usually means execution ran into data or into the middle of an instruction. The most common reason is an immediate load assembled for one width but executed with the other, which shifts every following instruction by one byte.",
               "Look at the last REP/SEP executed before the crash in the trace log and check that the caller and callee agree on register widths."]
    else:
        old, new = r.sample(sorted(_MODULES), 2)
        room = r.randrange(0, 0x128)
        q = f"A watch on $7E0010 jumps from {_h2(old)} to {_h2(new)} when I enter room {_h4(room)}. Is that expected?"
        log = "\n".join(f"frame {frame + i:06d}  $7E0010: {_h2(old if i < 2 else new)[1:]}  $7E0011: {r.randrange(0, 0x10):02X}" for i in range(4))
        out = [f"$10 is the main module: {_h2(old)} is {_MODULES[old]} and {_h2(new)} is {_MODULES[new]}.",
               f"Going to {_MODULES[new]} {'is normal' if new in (0x07, 0x09, 0x0E) else 'is not normal'} for a room transition; the submodule at $11 shows which step of the module is running.",
               f"Add a write breakpoint on $7E0010 (condition: value == {_h2(new)}) and enter room {_h4(room)} again to find the code that switches modules; it fired at frame {frame + 2} in this log."]
    if with_input:
        inp = log if r.random() < 0.5 else f"```\n{log}\n```"
    else:
        inp = None
        q = q + f" The watch shows:\n{log}" if r.random() < 0.3 else q
    return q, inp, "\n\n".join(out)


# --------------------------------------------------------------------------------------------
# Routing records (expert_router flavour)
# --------------------------------------------------------------------------------------------

_EXPERTS = ("asm_writer", "asm_explainer", "debugger", "asar_helper", "rom_mapper", "oos_lore")


def _router_request(g: _G, expert: str) -> str:
    r = g.r
    if expert == "asm_writer":
        return r.choice(("write a routine that {x}", "I need asm to {x}", "can you code something that will {x}")).format(x=r.choice(_BUILDERS[r.choice(tuple(_BUILDERS))])(g).do)
    if expert == "asm_explainer":
        return r.choice(("what does `LDA.w {a},X` mean", "explain why this uses XBA before AND #$00FF", "what is {a} used for", "why is there a PHK PLB at the start of every sprite")).format(a=r.choice(_SPR_TABLES))
    if expert == "debugger":
        return r.choice(("my game crashes after JSL to {p}", "health drops twice per hit", "sprite slot {s} never despawns", "the screen goes black after my DMA", "stack pointer keeps decreasing every frame")).format(p=_h6(g.rom()), s=r.randrange(16))
    if expert == "asar_helper":
        return r.choice(("asar says label .loop is redefined", "how do I use pushpc/pullpc", "what does warnpc do", "how to include a .bin file", "my define !Speed does not expand in LDA"))
    if expert == "rom_mapper":
        return r.choice(("where is free space in bank {b}", "convert PC offset {o} to a LoROM address", "which bank holds the sprite code", "is {p} in ROM or RAM")).format(b=_h2(r.randrange(0x20, 0x40)), o=f"0x{r.randrange(0x80000, 0x200000):06X}", p=_h6(g.rom()))
    return r.choice(("which dungeon gives the {i}", "how does the {i} work in Oracle of Secrets", "what sprite is the boss of {d}", "where is the {i} flag stored")).format(i=r.choice(_ITEMS), d=r.choice(_DUNGEONS))


def _rec_route(g: _G, with_input: bool) -> tuple[str, str | None, str]:
    r = g.r
    expert = r.choice(_EXPERTS)
    req = _router_request(g, expert)
    head = r.choice(("Route this request to the best expert.", "Classify the request below into one expert.", "Which expert should answer this?"))
    opts = "Experts: " + ", ".join(_EXPERTS) + "."
    if with_input:
        instr, inp = f"{head} {opts}", req
    else:
        instr, inp = f"{head} {opts} Request: {req}", None
    conf = r.randint(55, 99) / 100
    out = json.dumps({"expert": expert, "confidence": conf}) if r.random() < 0.8 else expert
    return instr, inp, out


# --------------------------------------------------------------------------------------------
# Long outputs (the length tail)
# --------------------------------------------------------------------------------------------


def _rec_long(g: _G, domain: str) -> tuple[str, str | None, str]:
    r = g.r
    target = r.randint(8400, 28000)  # body text; fences and prose push the total to ~8.5k-30k
    kind = r.randrange(3)
    if kind == 0:
        label = r.choice(("CompressedGfx", "TileData", "LevelData", "SpriteSheet", "MapBlocks", "AnimFrames"))
        nbytes = target * 10 // 54  # ~5.4 chars per byte in 16-byte `db` lines
        data = r.randbytes(nbytes)
        lines = [f"{label}:"]
        for off in range(0, nbytes, 16):
            lines.append("    db " + ", ".join(_HEX2[b] for b in data[off:off + 16]))
        instr = f"Convert this {nbytes}-byte binary blob into an Asar `db` table labelled {label}."
        out = f"Here is the data as {len(lines) - 1} lines of 16 bytes:\n\n" + _fence(lines) + f"\n\nYou can also keep it as a file and use `incbin \"{label.lower()}.bin\"`, which keeps the source short."
    elif kind == 1:
        label = r.choice(("PaletteSet", "DungeonPalettes", "SkyGradient", "ShadowColors"))
        ncol = target // 8
        lines = [f"{label}:"]
        cols = [r.randrange(0, 0x8000) for _ in range(ncol)]
        for off in range(0, ncol, 8):
            lines.append("    dw " + ", ".join(f"${c:04X}" for c in cols[off:off + 8]))
        instr = f"Generate {ncol // 16} palettes of 16 colours as `dw` BGR555 values for {label}."
        out = "Each colour is 0BBBBBGGGGGRRRRR (15 bits), stored little-endian with `dw`:\n\n" + _fence(lines) + "\n\nUpload it with a CGRAM DMA (mode 0 to $2122) during forced blank or NMI."
    else:
        parts, size, tasks = [], 0, 0
        while size < target:
            t = r.choice(_ALL_BUILDERS)(g)
            block = [f"; ---- {t.name}: {t.do}"] + t.lines + [""]
            parts.extend(block)
            size += sum(len(x) + 1 for x in block)
            tasks += 1
        instr = f"Write a complete {r.choice(('module', 'bank', 'patch file'))} of helper routines for the {r.choice(('sprite engine', 'HUD', 'custom items', 'dungeon logic', 'title screen'))}, with comments."
        out = f"Below are {tasks} routines in one Asar file, each preceded by a header comment.\n\n" + _fence(["lorom", f"org {_h6(g.rom())}", ""] + parts) + "\n\nAssemble with `asar patch.asm rom.sfc`; each routine is self-contained."
    return instr, None, out


# --------------------------------------------------------------------------------------------
# Unicode garnish
# --------------------------------------------------------------------------------------------


def _unicode(r: random.Random, instr: str, out: str) -> tuple[str, str]:
    k = r.randrange(5)
    if k == 0:
        return instr, out + "\n\nFlow: read state \u2192 update timer \u2192 draw."
    if k == 1 and "```asm\n" in out:
        return instr, out.replace("```asm\n", "```asm\n; \u521d\u671f\u5316 (init)\n", 1)
    if k == 2:
        return instr + " (r\u00e9ponse courte, s'il vous pla\u00eet)", out
    if k == 3:
        return instr, out + "\n\nNote: a na\u00efve loop costs \u2248 8 cycles \u00d7 iterations."
    return instr + " \u2014 \u30b9\u30d7\u30e9\u30a4\u30c8\u51e6\u7406", out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _record(g: _G, prof: _Profile, dnames: list[str], dcw: list[float], snames: list[str], scw: list[float]) -> dict:
    r = g.r
    domain = r.choices(dnames, cum_weights=dcw)[0]
    source = r.choices(snames, cum_weights=scw)[0]
    with_input = r.random() < prof.input_rate
    res = None
    if domain == "routing":
        res = _rec_route(g, with_input)
    elif prof.long_rate and r.random() < prof.long_rate:
        res = _rec_long(g, domain)
    elif domain == "debugging" and r.random() < 0.8:
        res = _rec_debug(g, with_input)
    elif with_input:
        roll = r.random()
        t = r.choice(_BUILDERS.get(domain, _ALL_BUILDERS))(g)
        if roll < 0.32:
            res = _rec_explain(g, t)
        elif roll < 0.57:
            res = _rec_fix(g, t)
        elif roll < 0.72:
            res = _rec_convert(g)
        elif roll < 0.84:
            res = _rec_comment(g, t)
        if res is None:
            res = _rec_write(g, t, True)
    else:
        roll = r.random()
        if domain == "asar_syntax" and roll < 0.45:
            res = _rec_asar_qa(g)
        elif roll < 0.14:
            res = _rec_question(g)
        else:
            t = r.choice(_BUILDERS.get(domain, _ALL_BUILDERS))(g)
            res = _rec_inline_explain(g, t) if roll < 0.22 else _rec_write(g, t, False)
    instr, inp, out = res
    if r.random() < prof.unicode_rate:
        instr, out = _unicode(r, instr, out)
    rec: dict = {"instruction": instr}
    if inp is not None:
        rec["input"] = inp
    rec["output"] = out
    rec["domain"] = domain
    rec["source"] = source
    return rec


def iter_demo_records(name: str, count: int, seed: int) -> Iterator[dict]:
    """Yield exactly `count` records for dataset `name`, deterministic for (name, count, seed).

    Unknown names fall back to a general 65816 profile (chosen by name prefix otherwise).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    prof = _profile_for(name)
    rng = random.Random(f"{seed}:{name}")
    g = _G(rng)
    dnames, dcw = _cum(prof.domains)
    snames, scw = _cum(prof.sources)
    history: list[dict] = []
    for _ in range(count):
        if prof.dup_rate and history and rng.random() < prof.dup_rate:
            yield dict(rng.choice(history))
            continue
        rec = _record(g, prof, dnames, dcw, snames, scw)
        if prof.dup_rate:
            if len(history) < 512:
                history.append(rec)
            else:
                history[rng.randrange(512)] = rec
        yield dict(rec)


def write_demo_dataset(path: Path, name: str, count: int, seed: int) -> None:
    """Write the records as JSONL (ASCII, one record per line), atomically (temp file + rename)."""
    with atomic_open(Path(path), "w") as fh:
        buf: list[str] = []
        for rec in iter_demo_records(name, count, seed):
            buf.append(json.dumps(rec, ensure_ascii=True))
            buf.append("\n")
            if len(buf) >= 2048:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))
