"""65816 validation of model answers: the `[eval]` settings, a batch of answers, files on disk.

The eval run and `zelda-tui asm check` both come through here. Which checker runs is decided
once per call: Asar when one is found (config, env, PATH, package, `.tools/`), else the built-in
pre-check; every verdict carries the checker's name. The module-level functions work without a
workspace (so `asm check` runs in any directory); `AsmService` binds them to the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..core import jsonl
from ..asm.code import Verdict, empty_verdict
from ..core.config import Config, EvalSpec
from ..core.errors import ZeldaError


@dataclass
class AsmService:
    """65816 validation bound to the workspace's `[eval]` table."""

    config: Config

    def settings(self) -> EvalSpec:
        """The `[eval]` table (asar, symbols, timeout_s, jobs), checked at load, paths resolved against the workspace."""
        return self.config.eval

    def checker(self, precheck: bool = False) -> dict:
        """Which checker a validation would use now, and why (for the CLI/TUI to show)."""
        return checker_info(self.settings(), precheck)

    def validate(self, answers: list[str], jobs: int | None = None, *, precheck: bool = False) -> list[Verdict]:
        """One Verdict per answer, in order; Asar when found, else the pre-check (labelled)."""
        return validate_answers(answers, self.settings(), jobs, precheck)

    def check(self, paths: list[Path], jobs: int | None = None, *, precheck: bool = False) -> list[dict]:
        """Validate files: each file is one answer; a .jsonl file holds one answer per line
        (its `output`, or the last assistant message), named `file:line` in the results."""
        return check_files(paths, self.settings(), jobs, precheck)


# --------------------------------------------------------------------------- without a workspace


def checker_info(settings: EvalSpec, precheck: bool = False) -> dict:
    """{"checker": "asar"|"precheck", "path", "version", "source", "note"}; raises for a bad configured path."""
    from ..backends.asar import locate_asar

    if precheck:
        return {"checker": "precheck", "path": None, "version": None, "source": "--precheck",
                "note": "the built-in pre-check (asked for)"}
    found = locate_asar(settings.asar)
    b = found.binary
    return {"checker": "asar" if b else "precheck", "path": str(b.path) if b else None,
            "version": b.version if b else None, "source": b.source if b else None, "note": found.describe()}


def validate_answers(answers: Sequence[str], settings: EvalSpec, jobs: int | None = None,
                     precheck: bool = False) -> list[Verdict]:
    from ..backends.asar import find_asar, validate_many

    binary = None if precheck else find_asar(settings.asar)
    return validate_many(list(answers), binary, symbols=settings.symbols, jobs=jobs or settings.jobs,
                         timeout_s=settings.timeout_s)


def check_files(paths: Sequence[Path], settings: EvalSpec, jobs: int | None = None,
                precheck: bool = False) -> list[dict]:
    """One result per snippet: {"file", "verdict", "checker", "errors", "line", "warnings"}.

    Unreadable files stop the command before anything runs (a usage error); a .jsonl line
    that is not JSON or has no answer is an "empty" result saying why, and the rest go on."""
    items: list[tuple[str, str | None, str]] = []  # (name, answer or None, why there is none)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ZeldaError(f"{path}: no such file", 2)
        if path.suffix == ".jsonl":
            for lineno, record, _ in jsonl.iter_records(path):
                name = f"{path}:{lineno}"
                answer, why = _answer_of(record)
                items.append((name, answer, why))
            continue
        try:
            items.append((str(path), path.read_text(encoding="utf-8", errors="replace"), ""))
        except OSError as exc:
            raise ZeldaError(f"{path}: cannot read ({exc.strerror or exc})", 2) from None
    todo = [answer for _, answer, _ in items if answer is not None]
    verdicts = iter(validate_answers(todo, settings, jobs, precheck))
    checker = "precheck" if precheck else None
    results = []
    for name, answer, why in items:
        if answer is None:
            checker = checker or checker_info(settings)["checker"]
            v = empty_verdict(checker, why)
        else:
            v = next(verdicts)
        results.append({"file": name, **v.to_dict()})
    return results


def _answer_of(record: Any) -> tuple[str | None, str]:
    if record is None:
        return None, "line is not valid JSON"
    if not isinstance(record, dict):
        return None, "line is not a JSON object"
    out = record.get("output")
    if isinstance(out, str):
        return out, ""
    msgs = record.get("messages")
    if isinstance(msgs, list):
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), str):
                return m["content"], ""
    return None, "record has no `output` string (nor an assistant message)"


def count_verdicts(results: Sequence[dict | Verdict]) -> dict[str, int]:
    """Counts per class, in the fixed class order (zero classes left out)."""
    from ..asm.code import VERDICTS

    counts = {v: 0 for v in VERDICTS}
    for r in results:
        counts[r["verdict"] if isinstance(r, dict) else r.verdict] += 1
    return {k: n for k, n in counts.items() if n}
