"""Extraction of code from answers, the patch wrapper and the classification of Asar's output.

The stderr texts below are Asar 1.91's real output for the snippets named beside them
(recorded from the binary); tests/backends/test_asar.py runs the binary itself.
"""

from __future__ import annotations

import pytest

from zelda_tui.asm.code import (PARENT_LABEL, Verdict, category_of, classify_asar, extract_code, is_empty,
                                     wrap_patch)
from zelda_tui.core.errors import ZeldaError

# --------------------------------------------------------------------------- extract_code


def test_fenced_block_with_language_tag():
    answer = "Here you go:\n\n```asm\nLDA #$01\nSTA $10\n```\n\nThat sets the flag."
    assert extract_code(answer) == "LDA #$01\nSTA $10"


@pytest.mark.parametrize("fence", ["```", "~~~", "````"])
def test_fenced_block_without_tag_and_other_fences(fence):
    assert extract_code(f"text\n{fence}\nRTL\n{fence}\nmore") == "RTL"


def test_several_blocks_are_joined_and_non_assembly_blocks_left_out():
    answer = ("```\n!A = $10\n```\nthen\n```65816\nLDA !A\n```\nbuild it:\n```bash\nasar patch.asm rom.sfc\n```\n"
              "```python\nprint(1)\n```")
    assert extract_code(answer) == "!A = $10\nLDA !A"


def test_only_non_assembly_blocks_are_still_judged():
    # the answer fenced its (wrong) code as python: it is still what the model answered
    assert extract_code("```python\nLDA #$00\n```") == "LDA #$00"


def test_unclosed_fence_runs_to_the_end():
    assert extract_code("```asm\nLDA #$01\nSTA $10\n") == "LDA #$01\nSTA $10"


def test_bare_answer_keeps_its_lines():
    answer = "\n\nLDA #$01\r\nSTA $10   \r\n\n"
    assert extract_code(answer) == "\n\nLDA #$01\nSTA $10"
    assert extract_code(answer).split("\n")[2] == "LDA #$01"  # line 3 stays line 3


def test_is_empty():
    assert is_empty("")
    assert is_empty("  \n ; only a comment\n\t")
    assert not is_empty("; comment\nRTS")


# --------------------------------------------------------------------------- wrap_patch


def test_wrap_patch_offset_maps_lines_back(tmp_path):
    text, offset = wrap_patch("LDA #$01\nRTS")
    lines = text.split("\n")
    assert lines[0] == "lorom"
    assert lines[offset - 1] == f"{PARENT_LABEL}:"
    assert lines[offset] == "LDA #$01"  # snippet line 1 is patch line offset+1
    sym = tmp_path / "labels.asm"
    text2, offset2 = wrap_patch("RTS", [sym])
    assert offset2 == offset + 1
    assert f'incsrc "{sym}"' in text2.split("\n")[:offset2]
    assert text2.split("\n")[offset2] == "RTS"


def test_wrap_patch_refuses_a_quote_in_a_symbols_path():
    with pytest.raises(ZeldaError, match=r"double quote.*\[eval\] symbols"):
        wrap_patch("RTS", ['/tmp/we"ird.asm'])


# --------------------------------------------------------------------------- classify_asar

OFFSET = 4


def test_unknown_command_is_a_syntax_error_on_the_snippet_line():
    err = "patch.asm:7: error: (Eunknown_command): Unknown command. [LDQ $10]\n"
    v = classify_asar(1, err, OFFSET)
    assert (v.verdict, v.checker, v.line) == ("syntax_error", "asar", 3)
    assert v.errors == ["snippet:3: error: (Eunknown_command): Unknown command. [LDQ $10]"]


def test_missing_label_is_unresolved():
    err = "patch.asm:6: error: (Elabel_not_found): Label 'Link_ReceiveItem' wasn't found. [JSL Link_ReceiveItem]\n"
    v = classify_asar(1, err, OFFSET)
    assert (v.verdict, v.line) == ("unresolved_label", 2)


def test_missing_define_and_macro_are_unresolved():
    err = ("patch.asm:5: error: (Edefine_not_found): Define 'SaveFileFlags' wasn't found.\n"
           "patch.asm:8 (called from patch.asm:8): error: (Emacro_not_found): Macro 'SpriteDraw' wasn't found. [%SpriteDraw(4)]\n")
    v = classify_asar(1, err, OFFSET)
    assert v.verdict == "unresolved_label"
    assert v.errors[1] == ("snippet:4 (called from snippet:4): error: (Emacro_not_found): Macro 'SpriteDraw' "
                           "wasn't found. [%SpriteDraw(4)]")


def test_syntax_error_beats_unresolved_and_other():
    err = ("patch.asm:5: error: (Elabel_not_found): Label 'Hud_Refresh' wasn't found. [JSL Hud_Refresh]\n"
           "patch.asm:6: error: (Einvalid_number): Invalid number. [STA ($12]\n")
    v = classify_asar(1, err, OFFSET)
    assert (v.verdict, v.line) == ("syntax_error", 1)
    other = "patch.asm:9: error: (Erelative_branch_out_of_bounds): Relative branch out of bounds. (Distance is 4094). [BRA Far]\n"
    assert classify_asar(1, other, OFFSET).verdict == "other"
    assert classify_asar(1, other + err.splitlines()[0], OFFSET).verdict == "other"


def test_a_missing_plus_minus_label_is_syntax_not_unresolved():
    err = "patch.asm:8: error: (Elabel_not_found): Label ':pos_1_0' wasn't found. [BEQ +]\n"
    assert classify_asar(1, err, OFFSET).verdict == "syntax_error"
    assert category_of("Elabel_not_found", "Label 'Foo' wasn't found.") == "unresolved_label"


def test_our_parent_label_is_hidden_in_messages():
    err = f"patch.asm:7: error: (Elabel_not_found): Label '{PARENT_LABEL}_done' wasn't found. [BNE .done]\n"
    v = classify_asar(1, err, OFFSET)
    assert "Label '.done' wasn't found" in v.errors[0]
    assert PARENT_LABEL not in v.errors[0]


def test_error_in_an_include_keeps_its_file_and_has_no_snippet_line():
    err = "/ws/labels.asm:6: error: (Eunknown_command): Unknown command. [BOOM]\n"
    v = classify_asar(1, err, OFFSET)
    assert v.errors == [err.strip()]
    assert v.line is None


def test_assembles_keeps_warnings():
    err = "patch.asm:5: warning: (W65816_xx_y_assume_16_bit): LDA $xx,y is not valid with 8-bit parameters, assuming 16-bit. [LDA $12,y]\n"
    v = classify_asar(0, err, OFFSET)
    assert (v.verdict, v.errors, v.line) == ("assembles", [], None)
    assert v.warnings[0].startswith("snippet:1: warning: (W65816_xx_y_assume_16_bit)")


def test_signal_and_silent_failure_are_crashes():
    assert classify_asar(-11, "", OFFSET).verdict == "crash"
    assert "signal 11" in classify_asar(-11, "", OFFSET).errors[0]
    silent = classify_asar(127, "asar: error while loading shared libraries: libstdc++.so.6\n", OFFSET)
    assert silent.verdict == "crash"
    assert "status 127" in silent.errors[0] and "libstdc++" in silent.errors[1]


def test_limit_reached_alone_is_not_a_cause():
    err = ("patch.asm:5: error: (Elabel_redefined): Label 'Big' redefined. [Big = $123456]\n"
           "patch.asm:5: error: (Elimit_reached): Over 20 errors detected. Aborting. [Big = $123456]\n")
    assert classify_asar(1, err, OFFSET).verdict == "other"


# --------------------------------------------------------------------------- Verdict


def test_verdict_round_trips_and_rejects_unknown_names():
    v = Verdict("syntax_error", "precheck", ["snippet:1: error: (Eunknown_command): Unknown command. [X]"], 1)
    assert Verdict.from_dict(v.to_dict()) == v
    assert v.to_dict()["checker"] == "precheck" and not v.ok
    with pytest.raises(ValueError):
        Verdict("fine", "asar")
    with pytest.raises(ValueError):
        Verdict("assembles", "gcc")
