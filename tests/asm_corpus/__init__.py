"""The validator corpus (see README.md): each `good_*` / `bad_*` file with its expected classes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent
SYMBOLS = CORPUS / "symbols" / "hack_labels.asm"
NEEDS_SYMBOLS = CORPUS / "symbols" / "needs_symbols.asm"


@dataclass(frozen=True)
class Case:
    path: Path
    text: str
    expect: str  # what Asar says
    expect_precheck: str  # what the pre-check says (the same unless the file's `precheck:` line differs)

    @property
    def id(self) -> str:
        return self.path.stem


def cases() -> list[Case]:
    out = []
    for path in sorted(CORPUS.glob("*_*.*")):
        if not path.name.startswith(("good_", "bad_")):
            continue
        text = path.read_text(encoding="utf-8")
        head = text.splitlines()[:3]
        m = re.search(r"expect:\s*(\w+)", head[0])
        if m is None:
            raise ValueError(f"{path}: first line must say `expect: CLASS`")
        pre = next((p.group(1) for h in head if (p := re.search(r"precheck:\s*(\w+)", h))), m.group(1))
        out.append(Case(path, text, m.group(1), pre))
    return out
