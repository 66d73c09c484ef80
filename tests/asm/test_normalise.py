"""The one 65816 comment stripper and the normalised match of an answer against its reference."""

from __future__ import annotations

import pytest

from zelda_tui.asm.normalise import codes_match, normalise_code, strip_comment
from zelda_tui.asm.precheck import precheck

# --- normalised match ----------------------------------------------------------------------------


def test_match_ignores_comments_spacing_and_mnemonic_case():
    reference = "Clear:\n    LDA #$0A        ; ten\n    STA.l $7E00AB,X\n\n    db \"a;b\"\n    RTL\n"
    answer = "Clear:\n\tlda #$0a\n  sta.L $7e00ab , x   ; store\n  DB \"a;b\"\nrtl"
    assert codes_match(answer, reference)
    assert normalise_code(reference) == ["Clear:", "lda #$0a", "sta.l $7e00ab,x", 'db "a;b"', "rtl"]


@pytest.mark.parametrize("answer", [
    "clear:\n    LDA #$0A\n    RTL",  # labels are case-sensitive in Asar
    "Clear:\n    LDA #$0B\n    RTL",  # another value
    "Clear:\n    LDA #$0A",  # a line missing
    'Clear:\n    LDA #$0A\n    db "A;b"\n    RTL',  # string contents keep their case
])
def test_match_keeps_what_changes_the_program(answer):
    assert not codes_match(answer, "Clear:\n    LDA #$0A\n    RTL")


def test_nothing_never_matches_nothing():
    assert not codes_match("", "; only a comment\n")


def test_a_lone_apostrophe_does_not_hide_the_comment_after_it():
    # prose or a typo opens no string: the comment after it is a comment for the match as for the pre-check
    assert strip_comment("    LDA #$0A ; Link's health ; full") == "    LDA #$0A "
    assert strip_comment("    JSL Sprite_Prep' ; typo") == "    JSL Sprite_Prep' "
    assert codes_match("Main:\n    JSL Sprite_Prep' ; a typo", "Main:\n    JSL Sprite_Prep'   ; another comment")
    assert strip_comment("    LDA #';' ; a char literal keeps its ;") == "    LDA #';' "
    assert strip_comment('    db "a;b" ; a string keeps its ;') == '    db "a;b" '


def test_precheck_and_match_share_the_stripper():
    verdict = precheck("Main:\n    LDA #$0A ; Link's counter ; still a comment\n    RTL")
    assert verdict.verdict == "assembles", verdict
