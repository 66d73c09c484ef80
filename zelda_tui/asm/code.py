"""65816 answers -> a patch Asar can assemble -> one verdict (pure: no processes, no files).

The validator's shared vocabulary lives here so the Asar backend and the built-in pre-check
give the same answer shape:

* `extract_code` takes the code out of a model answer (fenced blocks, else the bare text);
* `wrap_patch` puts it in a minimal patch (`lorom`, the symbols includes, `org`, a parent
  label so a snippet's `.sublabels` have one) and says how many lines it added, so Asar's
  line numbers map back to the snippet's own;
* `classify_asar` turns Asar's exit status and stderr into a `Verdict`, keeping its error
  lines (rewritten to snippet line numbers).

Classes: "assembles", "syntax_error" (unknown command, bad addressing mode, broken
directive, ...), "unresolved_label" (a label, define, macro or function the snippet uses but
does not define: the ROM hack defines it; the `[eval] symbols` includes resolve those),
"timeout", "crash", "empty" (no code to check) and "other" (well-formed code that still
fails: a branch out of range, a missing incbin file, a failed assert, a redefined label).
When a snippet has errors of several classes the worst one wins: syntax > other >
unresolved, so "unresolved_label" means "would assemble given the hack's symbols".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..core.config import EvalSpec
from ..core.errors import ZeldaError

VERDICTS = ("assembles", "syntax_error", "unresolved_label", "timeout", "crash", "empty", "other")
CHECKERS = ("asar", "precheck")
PATCH_NAME = "patch.asm"
ROM_NAME = "rom.sfc"
ROM_SIZE = 512 * 1024  # a blank (zero-filled) 4 Mbit LoROM: room for `org` anywhere in banks $00-$0F and for freespace
PARENT_LABEL = "zelda_tui_snippet"  # gives a snippet's leading `.sublabel` the parent Asar requires
SNIPPET = "snippet"  # the file name error lines use for the snippet's own lines
DEFAULT_TIMEOUT_S = EvalSpec.timeout_s  # the one default: `[eval] timeout_s`

# Asar error codes by class; every other E-code is a syntax error (the code is malformed).
UNRESOLVED_CODES = frozenset({
    "Elabel_not_found", "Edefine_not_found", "Emacro_not_found", "Efunction_not_found", "Estruct_not_found",
})
OTHER_CODES = frozenset({
    "Erelative_branch_out_of_bounds", "Esnes_address_doesnt_map_to_rom", "Esnes_address_out_of_bounds",
    "Ebank_border_crossed", "Efile_not_found", "Efailed_to_open_file", "Efailed_to_open_file_access_denied",
    "Efailed_to_open_not_regular_file", "Eassertion_failed", "Eerror_command", "Ewarnpc_failed",
    "Ewarnpc_failed_equal", "Eno_freespace", "Eno_freespace_in_mapped_banks", "Eno_freespace_norom",
    "Efreespace_limit_reached", "Estatic_freespace_autoclean", "Estatic_freespace_growing", "Elabel_redefined",
    "Emacro_redefined", "Estruct_redefined", "Efunction_redefined", "Edivision_by_zero", "Emodulo_by_zero", "Enan",
    "Erom_too_short", "Erom_title_incorrect", "Ecreate_rom_failed", "Eopen_rom_failed", "Einternal_error",
    "Erecursion_limit", "Elabel_moving", "Elabel_on_third_pass", "E16mb_rom_limit", "Eincbin_64kb_limit",
    "Ebuffer_too_small", "Efile_offset_out_of_bounds", "Ereadfile_1_to_4_bytes", "Ecanreadfile_0_bytes",
    "Ewerror", "Eprot_too_many_entries", "Eautoclean_label_at_freespace_end",
})
IGNORED_CODES = frozenset({"Elimit_reached"})  # "Over 20 errors detected": a consequence, not a cause
_RANK = {"syntax_error": 3, "other": 2, "unresolved_label": 1}

# `file:line[ (called from file:line)]: error|warning: (Ecode): message`
_DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?P<called> \(called from [^)]*\))?: "
                   r"(?P<kind>error|warning): \((?P<code>[EW]\w+)\): ?(?P<msg>.*)$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$")
_NOT_ASM = frozenset({
    "python", "py", "python3", "bash", "sh", "shell", "zsh", "console", "shell-session", "powershell", "ps1",
    "bat", "cmd", "json", "jsonl", "yaml", "yml", "toml", "ini", "c", "cpp", "c++", "h", "hpp", "js",
    "javascript", "ts", "typescript", "rust", "rs", "go", "java", "html", "css", "xml", "diff", "patch",
    "makefile", "make", "lua", "csharp", "cs", "sql",
})


@dataclass
class Verdict:
    """What one answer came to. `errors` are Asar's (or the pre-check's) error lines, with
    the snippet's own line numbers (`snippet:N: error: (Ecode): message [statement]`);
    `line` is the first failing snippet line; `checker` says what really ran."""

    verdict: str
    checker: str
    errors: list[str] = field(default_factory=list)
    line: int | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r} (one of {', '.join(VERDICTS)})")
        if self.checker not in CHECKERS:
            raise ValueError(f"unknown checker {self.checker!r} (one of {', '.join(CHECKERS)})")

    @property
    def ok(self) -> bool:
        return self.verdict == "assembles"

    def first_error(self) -> str:
        return self.errors[0] if self.errors else ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        return cls(verdict=data["verdict"], checker=data["checker"], errors=list(data.get("errors") or []),
                   line=data.get("line"), warnings=list(data.get("warnings") or []))


# --------------------------------------------------------------------------- extraction


def extract_code(answer: str) -> str:
    """The code in a model answer: its fenced blocks joined (blocks tagged with a language
    that is clearly not assembly are left out unless nothing else is fenced); with no fence
    the whole answer. Line endings are normalised; trailing blank space is dropped, leading
    lines are kept so line numbers match the source."""
    text = answer.replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    fence = ""
    tag = ""
    for line in text.split("\n"):
        if current is None:
            m = _FENCE.match(line)
            if m:
                fence, tag, current = m.group(1), m.group(2).lower(), []
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            blocks.append((tag, current))
            current = None
        else:
            current.append(line)
    if current is not None:  # an unclosed fence runs to the end (a truncated generation)
        blocks.append((tag, current))
    if not blocks:
        return text.rstrip()
    chosen = [lines for tag, lines in blocks if tag not in _NOT_ASM] or [lines for _, lines in blocks]
    return "\n".join("\n".join(lines).rstrip("\n") for lines in chosen).rstrip()


def is_empty(code: str) -> bool:
    """Nothing to assemble: blank, or only comments."""
    return all(not line.split(";", 1)[0].strip() for line in code.split("\n"))


# --------------------------------------------------------------------------- the patch


def wrap_patch(code: str, symbols_includes: Sequence[str | Path] = ()) -> tuple[str, int]:
    """The patch text for Asar and the number of lines before the snippet's first line.

    `lorom`, then each symbols file (`incsrc`, by absolute path), then `org $008000` and a
    parent label. A snippet that sets its own mapper or `org` overrides ours."""
    head = ["lorom"]
    for inc in symbols_includes:
        path = str(inc)
        if '"' in path or "\n" in path:
            raise ZeldaError(f"{path}: a symbols path cannot contain a double quote or a newline ([eval] symbols)", 2)
        head.append(f'incsrc "{path}"')
    head += ["org $008000", f"{PARENT_LABEL}:"]
    return "\n".join(head) + "\n" + code + "\n", len(head)


# --------------------------------------------------------------------------- classification


def category_of(code: str, message: str = "") -> str:
    """The verdict class one Asar error code stands for."""
    if code in UNRESOLVED_CODES:
        if code == "Elabel_not_found" and "':" in message:
            return "syntax_error"  # a +/- label with no target: never something the hack defines
        return "unresolved_label"
    if code in OTHER_CODES:
        return "other"
    return "syntax_error"


def worst(categories: Iterable[str]) -> str | None:
    """syntax_error > other > unresolved_label; None for no categories."""
    best = None
    for c in categories:
        if best is None or _RANK[c] > _RANK[best]:
            best = c
    return best


@dataclass(frozen=True)
class Diagnostic:
    """One parsed Asar stderr line."""

    kind: str  # "error" | "warning"
    code: str
    text: str  # rewritten to snippet line numbers
    snippet_line: int | None  # None: the line is in an include or in our wrapper
    message: str


def parse_diagnostics(stderr: str, line_offset: int, patch_name: str = PATCH_NAME) -> list[Diagnostic]:
    """Asar's error/warning lines, with `patch.asm:N` rewritten to `snippet:N-offset`."""
    out = []

    def remap(m: re.Match) -> str:
        n = int(m.group(1)) - line_offset
        return f"{SNIPPET}:{n}" if n >= 1 else m.group(0)

    loc = re.compile(re.escape(patch_name) + r":(\d+)")
    for raw in stderr.splitlines():
        m = _DIAG.match(raw.strip())
        if not m:
            continue
        line = None
        if m.group("file") == patch_name and int(m.group("line")) > line_offset:
            line = int(m.group("line")) - line_offset
        text = loc.sub(remap, raw.strip()).replace(PARENT_LABEL + "_", ".")
        out.append(Diagnostic(m.group("kind"), m.group("code"), text, line, m.group("msg")))
    return out


def classify_asar(returncode: int, stderr: str, line_offset: int, patch_name: str = PATCH_NAME) -> Verdict:
    """Asar's exit status and stderr -> Verdict(checker="asar").

    A negative status (killed by a signal) is a crash; a failure without one parseable error
    line is a crash too (Asar always names its errors), with the tail of its output kept."""
    diags = parse_diagnostics(stderr, line_offset, patch_name)
    errors = [d for d in diags if d.kind == "error"]
    warnings = [d.text for d in diags if d.kind == "warning"]
    if returncode < 0:
        return Verdict("crash", "asar", [f"asar was killed by signal {-returncode}"] + [d.text for d in errors],
                       _first_line(errors), warnings)
    counted = [d for d in errors if d.code not in IGNORED_CODES]
    if returncode == 0 and not counted:
        return Verdict("assembles", "asar", [], None, warnings)
    if not counted:
        tail = [ln for ln in stderr.strip().splitlines()[-3:] if ln.strip()]
        return Verdict("crash", "asar", [f"asar exited with status {returncode} without an error line"] + tail,
                       None, warnings)
    verdict = worst(category_of(d.code, d.message) for d in counted) or "other"
    return Verdict(verdict, "asar", [d.text for d in errors], _first_line(errors), warnings)


def _first_line(errors: list[Diagnostic]) -> int | None:
    lines = [d.snippet_line for d in errors if d.snippet_line is not None]
    return min(lines) if lines else None


def empty_verdict(checker: str, why: str = "the answer has no code (blank or only comments)") -> Verdict:
    """Nothing ran: said so, never "assembles"."""
    return Verdict("empty", checker, [why], None, [])
