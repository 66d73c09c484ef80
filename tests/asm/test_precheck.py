"""The built-in pre-check on its own: the corpus, the opcode table, labels, defines, macros, symbols.

tests/backends/test_asar.py checks the same table against the real Asar binary."""

from __future__ import annotations

import pytest

from tests.asm_corpus import NEEDS_SYMBOLS, SYMBOLS, cases
from zelda_tui.asm.code import extract_code
from zelda_tui.asm.precheck import MODES, known_symbols, precheck

CASES = cases()

# every 65816 mnemonic (WDC datasheet), so a gap in the table fails here
ALL_MNEMONICS = """ADC AND ASL BCC BCS BEQ BIT BMI BNE BPL BRA BRK BRL BVC BVS CLC CLD CLI CLV CMP COP CPX CPY DEC DEX DEY
EOR INC INX INY JML JMP JSL JSR LDA LDX LDY LSR MVN MVP NOP ORA PEA PEI PER PHA PHB PHD PHK PHP PHX PHY PLA PLB PLD
PLP PLX PLY REP ROL ROR RTI RTL RTS SBC SEC SED SEI SEP STA STP STX STY STZ TAX TAY TCD TCS TDC TRB TSB TSC TSX TXA
TXS TXY TYA TYX WAI WDM XBA XCE""".split()


def test_corpus_is_big_enough():
    assert sum(c.id.startswith("good_") for c in CASES) >= 25
    assert sum(c.id.startswith("bad_") for c in CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_corpus(case):
    v = precheck(extract_code(case.text))
    assert v.checker == "precheck"
    assert v.verdict == case.expect_precheck, v.errors
    if v.verdict == "assembles":
        assert v.errors == [] and v.line is None
    elif v.verdict != "empty":
        assert v.line is not None and v.errors[0].startswith(f"snippet:{v.line}: error: (E")


def test_table_has_every_mnemonic():
    assert sorted(MODES) == sorted(m.lower() for m in ALL_MNEMONICS)
    assert len(MODES) == 92


@pytest.mark.parametrize("line, ok", [
    ("LDA.b $12,y", True),       # no dp,y: widened to abs,y
    ("LDA.l $12,y", False),      # no long,y
    ("STX $12,y", True), ("STX $0012,y", False), ("STX 18,y", True), ("STX 4660,y", False),
    ("JSL $12", True), ("JMP $12", True), ("JMP $123456", False), ("JMP.l $1234", False), ("JML.w $1234", False),
    ("PEA $1234", True), ("PEA #$1234", False), ("PEI ($12)", True), ("PEI $12", False),
    ("MVN $7E,$7F", True), ("MVN $7E7F", True), ("MVN.w $12", True), ("MVN $12", False), ("MVP #$7E,#$7F", False),
    ("REP #$30", True), ("REP #$1234", False), ("REP.b #$1234", True), ("REP.w #$30", False),
    ("BRK", True), ("BRK #$00", True), ("BRK $00", False), ("COP #$1234", False),
    ("NOP #3", True), ("INX #2", True), ("CLC #1", False), ("XBA #2", False),
    ("ASL", True), ("ASL A", True), ("ASL.w A", False), ("CLC.b", False), ("NOP A", False),
    ("LDA #$12345678", True), ("LDA.l #$12", True), ("LDA.x $12", False),
    ("LDA ($12,s),y", True), ("LDA ($1234,x)", False), ("LDA [$1234]", False), ("JMP [$1234]", True),
    ("JSR ($1234,x)", True), ("JSR ($1234)", False), ("BRA $808000", True), ("BRA P,x", False),
    ("LDA #<$1234", False), ("LDA #(1+2)*3", True), ("LDA #read1($008000)", True),
    ("LDA #$00:STA $00", False), ("LDA #$00 : STA $00", True),
])
def test_addressing_modes_match_asar(line, ok):
    """Each answer here was checked against Asar 1.91 (tests/backends/test_asar.py does it live)."""
    v = precheck(f"P:\n{line}\nRTS")
    assert (v.verdict == "assembles") == ok, v.errors


def test_error_lines_use_snippet_numbers_and_asar_codes():
    v = precheck("LDA #$01\n\nLDQ $10\nJSL Missing\n")
    assert v.verdict == "syntax_error"
    assert v.line == 3
    assert v.errors == ["snippet:3: error: (Eunknown_command): Unknown command. [LDQ $10]",
                        "snippet:4: error: (Elabel_not_found): Label 'Missing' wasn't found. [JSL Missing]"]


def test_forward_references_and_sublabels_resolve():
    code = "Main:\n  BRA .later\n  JSR Other_inner\n.later\n  RTS\nOther:\n.inner\n  RTS\n"
    assert precheck(code).verdict == "assembles"
    assert precheck("Main:\n  BRA .nope\n").errors[0].endswith("Label 'Main_nope' wasn't found. [BRA .nope]")


def test_anonymous_labels_need_a_target_in_the_right_direction():
    assert precheck("- BRA -\n").verdict == "assembles"
    assert precheck("BRA -\n- RTS\n").verdict == "syntax_error"  # `-` looks backwards only
    assert precheck("BRA ++\n+ RTS\n").verdict == "syntax_error"  # `++` is not `+`
    assert precheck("BRA ++\n++ RTS\n").verdict == "assembles"


def test_defines_are_substituted_and_sized_by_value():
    assert precheck("!ram = $7E0010\nLDA !ram\n").verdict == "assembles"
    assert precheck("!ram = $7E0010\nLDX !ram\n").verdict == "syntax_error"  # LDX has no long mode
    assert precheck("!n = 2\n!n #= !n+1\nLDA #!n\n").verdict == "assembles"
    v = precheck("LDA !nowhere\n")
    assert v.verdict == "unresolved_label" and "Define 'nowhere' wasn't found" in v.errors[0]
    # a define whose value starts with spaces (Asar assembles it; the check once crashed on it)
    assert precheck('!op = " lda"\n!op #1\n').verdict == "assembles"


def test_macro_arguments_and_bodies():
    macro = "macro Store(value, addr)\n  LDA #<value>\n  STA <addr>\nendmacro\n"
    assert precheck(macro + "%Store($01, $10)\n").verdict == "assembles"
    assert precheck(macro + "%Store($01)\n").verdict == "syntax_error"  # wrong argument count
    bad_body = "macro Bad()\n  LDQ #$00\nendmacro\n%Bad()\n"
    v = precheck(bad_body)
    assert v.verdict == "syntax_error" and v.line == 4  # reported at the call, like Asar
    assert precheck("%Store($01, $10)\n" + macro).verdict == "unresolved_label"  # used before it is defined


def test_symbols_files_resolve_labels_defines_and_macros():
    code = NEEDS_SYMBOLS.read_text()
    assert precheck(code).verdict == "unresolved_label"
    known = known_symbols([SYMBOLS.read_text()])
    assert {"Link_ReceiveItem", "Sprite_SpawnDynamically"} <= known.labels
    assert known.defines["SaveFileFlags"] == "$7EF3C6" and "SpriteDraw" in known.macros
    assert precheck(code, known).verdict == "assembles"
    # a define from the symbols file sizes the operand like Asar would
    assert precheck("LDX !WramBuffer\n", known).verdict == "syntax_error"
    # redefining a label the hack already has is Asar's `Elabel_redefined`
    assert precheck("Link_ReceiveItem:\n RTL\n", known).verdict == "other"


def test_blocks_must_be_balanced():
    assert precheck("if 1\nelse\nendif\n").verdict == "assembles"
    assert precheck("else\n").verdict == "syntax_error"
    assert precheck("struct S $7E0000\n.a: skip 1\n").verdict == "syntax_error"
    assert precheck("pushpc\norg $008000\n").verdict == "syntax_error"
    assert precheck("if !x == 1 : LDA #$00\n!x = 1\n").verdict == "unresolved_label"  # single-line if needs no endif


def test_spc700_code_is_not_checked_as_65816():
    code = "arch spc700\n  mov a, #$00\n  mov $f2, a\narch 65816\n  LDA #$00\n"
    assert precheck(code).verdict == "assembles"


def test_empty_and_comment_only():
    assert precheck("").verdict == "empty"
    v = precheck("; nothing here\n")
    assert v.verdict == "empty" and v.errors
