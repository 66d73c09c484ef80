"""65816 source as text: the one comment stripper, the mnemonic and directive tables, and the
normalised form two snippets are compared in (an eval's "match" against its reference).

Pure: no processes, no files.
"""

from __future__ import annotations

import re

MNEMONICS = frozenset("""
ADC AND ASL BCC BCS BEQ BIT BMI BNE BPL BRA BRK BRL BVC BVS CLC CLD CLI CLV CMP COP CPX CPY DEC DEA DEX DEY
EOR INC INA INX INY JML JMP JSL JSR LDA LDX LDY LSR MVN MVP NOP ORA PEA PEI PER PHA PHB PHD PHK PHP PHX PHY
PLA PLB PLD PLP PLX PLY REP ROL ROR RTI RTL RTS SBC SEC SED SEI SEP STA STP STX STY STZ TAX TAY TCD TCS TDC
TRB TSB TSC TSX TXA TXS TXY TYA TYX WAI WDM XBA XCE
""".split())
DIRECTIVES = frozenset("""
org base db dw dl dd pushpc pullpc pushbase pullbase incsrc incbin macro endmacro if elseif else endif while
endwhile namespace lorom hirom exlorom exhirom sa1rom fullsa1rom sfxrom norom freespace freecode freedata
warnpc fillbyte fill padbyte pad skip table cleartable print assert arch math check bank struct endstruct
function autoclean prot pushtable pulltable optimize
""".split())
_HEX = re.compile(r"\$[0-9A-Fa-f]+")
_SPACE_AROUND = re.compile(r"\s*([,()\[\]+\-*/<>=])\s*")
_INDEX_REG = re.compile(r",([XYSxys])\b")


def strip_comment(text: str) -> str:
    """Drop `; comment`, but not a `;` inside "..." or a char literal '.'.

    A lone apostrophe (prose, a typo) opens nothing: as in Asar, only `'x'` is a literal, so the
    comment after it is still dropped (the pre-check and the eval's match agree on every line).
    """
    if ";" not in text:
        return text
    quote = ""
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            if c == "'" and not (i + 2 < len(text) and text[i + 2] == "'"):
                continue  # a lone apostrophe in prose, not a char literal
            quote = c
        elif c == ";":
            return text[:i]
    return text


def normalise_code(code: str) -> list[str]:
    """Lines of code compared modulo comments, blank lines, spacing, and the case of mnemonics,
    directives, hex digits and index registers.

    Labels and defines keep their case (Asar's labels are case-sensitive).
    """
    out = []
    for raw in code.replace("\r\n", "\n").split("\n"):
        line = strip_comment(raw).strip()
        if not line:
            continue
        tokens = line.split()
        for i, tok in enumerate(tokens):
            head = tok.split(".", 1)[0]
            if (i == 0 or tokens[i - 1].endswith(":")) and (head.upper() in MNEMONICS or head.lower() in DIRECTIVES):
                tokens[i] = tok.lower()
        line = " ".join(tokens)
        line = _SPACE_AROUND.sub(r"\1", line)
        line = _INDEX_REG.sub(lambda m: "," + m.group(1).lower(), line)
        out.append(_HEX.sub(lambda m: m.group(0).lower(), line))
    return out


def codes_match(answer_code: str, reference_code: str) -> bool:
    """Same normalised lines; two empty snippets never match (nothing was compared)."""
    a, b = normalise_code(answer_code), normalise_code(reference_code)
    return bool(b) and a == b
