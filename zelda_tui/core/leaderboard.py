"""The leaderboard, the pure part: a scored checkpoint as a row, ranking, best-of-run marks and
the export mark.

Apart from `core.evals` (prompts, answers, scoring) because it is a view over stored scores, not
a step in making them: the Leaderboard screen, `leaderboard` (and its `--json`, whose keys are a
contract) and the samples screens read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

from .errors import ZeldaError
from .evals import BASE, Summary


@dataclass(frozen=True)
class LeaderboardRow:
    """One scored (run, checkpoint) of a prompt set, as the Leaderboard and `leaderboard --json` show it.

    The base model is a row too (`is_base`, checkpoint `base`). `best` and `rank` are set only by
    `mark_best` and `rank`; its `to_json()` keys are a contract (scripts read them)."""

    run: str
    checkpoint: str
    step: int | None = None
    is_base: bool = False
    model: str = ""
    prompt_set: str = ""
    prompts: int = 0
    samples: int = 0
    assemble_rate: float | None = None
    rates: dict[str, float] = field(default_factory=dict)  # verdict -> share of greedy answers
    counts: dict[str, int] = field(default_factory=dict)
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    match_rate: float | None = None
    matched: int = 0
    with_reference: int = 0
    truncated: int = 0
    by_category: dict[str, dict] = field(default_factory=dict)
    eval_loss: float | None = None
    eval_loss_by_dataset: dict[str, float] = field(default_factory=dict)
    prompts_changed: bool = False  # scored on an older version of the prompt set
    scored_at: float = 0.0
    best: tuple[str, ...] = ()  # BEST_ASSEMBLES and/or BEST_LOSS
    rank: int = 0  # 1-based position
    exported: dict[str, Any] = field(default_factory=dict)  # export_mark of its export.json; {} when not exported

    @classmethod
    def scored(cls, run: str, checkpoint: str, step: int | None, model: str, prompt_set: str, summary: Summary,
               eval_loss: dict, prompts_changed: bool, scored_at: float) -> "LeaderboardRow":
        """From a checkpoint's stored Summary and `eval_loss_at`'s answer for its step."""
        return cls(run=run, checkpoint=checkpoint, step=step, is_base=checkpoint == BASE, model=model,
                   prompt_set=prompt_set, prompts=summary.prompts, samples=summary.samples,
                   assemble_rate=summary.assemble_rate, rates=summary.rates, counts=summary.counts,
                   pass_at_1=summary.pass_at_1, pass_at_k=summary.pass_at_k, match_rate=summary.match_rate,
                   matched=summary.matched, with_reference=summary.with_reference, truncated=summary.truncated,
                   by_category=summary.by_category, eval_loss=eval_loss["eval_loss"],
                   eval_loss_by_dataset=eval_loss["by_dataset"], prompts_changed=prompts_changed, scored_at=scored_at)

    @property
    def key(self) -> tuple[str, str]:
        """(run, checkpoint): what names a row across refreshes and sorts."""
        return (self.run, self.checkpoint)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "best": list(self.best)}


EXPORT_MARK = "⇩"  # next to an exported checkpoint


def export_mark(record: dict[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint's export.json says was exported and how it verified, for the leaderboard:
    {"merged": {ok, max_abs_diff, tolerance} | None, "gguf": {type: {same, prompts}}}; {} when
    nothing is (a fresh export rewrites the record with merged None until it is in place)."""
    if not record:
        return {}
    merged = record.get("merged") if isinstance(record.get("merged"), dict) else None
    gguf = {str(kind): {"same": g.get("same"), "prompts": g.get("prompts")}
            for kind, g in (record.get("gguf") or {}).items() if isinstance(g, dict)}
    if merged is None and not gguf:
        return {}
    return {"merged": None if merged is None else {k: merged.get(k) for k in ("ok", "max_abs_diff", "tolerance")},
            "gguf": gguf}


def export_text(exported: dict[str, Any]) -> str:
    """An export mark in words, short: "merged ✓, gguf f16 3/3, q8_0 2/3" ("" when not exported)."""
    if not exported:
        return ""
    merged = exported.get("merged")
    parts = [] if merged is None else ["merged " + ("✓" if merged.get("ok") else "✗")]
    gguf = exported.get("gguf") or {}
    if gguf:
        parts.append("gguf " + ", ".join(f"{kind} {g.get('same')}/{g.get('prompts')}" for kind, g in gguf.items()))
    return ", ".join(parts)


# column -> (row field, higher is better)
SORT_COLUMNS: dict[str, tuple[str, bool]] = {
    "assemble": ("assemble_rate", True),
    "pass1": ("pass_at_1", True),
    "passk": ("pass_at_k", True),
    "match": ("match_rate", True),
    "eval_loss": ("eval_loss", False),
    "step": ("step", True),
    "run": ("run", False),
}
DEFAULT_SORT = "assemble"
# ties on the chosen column are broken by these, in order
TIE_BREAK = ("assemble", "match", "passk", "eval_loss")


def sort_key_names() -> list[str]:
    return list(SORT_COLUMNS)


def rank(rows: Iterable[LeaderboardRow], sort: str = DEFAULT_SORT) -> list[LeaderboardRow]:
    """Best first by `sort` (its natural direction), missing values last, ties by TIE_BREAK.

    Each row comes back with its `rank` (1-based position).
    """
    if sort not in SORT_COLUMNS:
        raise ZeldaError(f"unknown sort column '{sort}' (one of: {', '.join(SORT_COLUMNS)})", exit_code=2)
    order = [sort] + [c for c in TIE_BREAK if c != sort]

    def key(row: LeaderboardRow) -> tuple:
        parts: list[Any] = []
        for col in order:
            name, higher = SORT_COLUMNS[col]
            value = getattr(row, name)
            if value is None:
                parts.append((1, 0))
            elif isinstance(value, str):
                parts.append((0, value))
            else:
                parts.append((0, -value if higher else value))
        parts.append((0, row.run))
        parts.append((0, row.step or 0))
        return tuple(parts)

    return [replace(row, rank=i) for i, row in enumerate(sorted(rows, key=key), 1)]


BEST_ASSEMBLES = "assembles"  # the run's checkpoint whose answers assemble most often
BEST_LOSS = "eval_loss"  # the one early stopping keeps (else the lowest eval loss)
BEST_MARKS = {BEST_ASSEMBLES: "★", BEST_LOSS: "▼"}


def mark_best(rows: list[LeaderboardRow], early_stopping_pick: dict[str, str]) -> list[LeaderboardRow]:
    """The rows (same order) with their `best`: which of its run's checkpoints is best by assemble rate
    and which by eval loss (`early_stopping_pick`: run -> checkpoint name early stopping chose, where
    it ran), so a user sees when the two disagree. Base rows are never marked."""
    by_run: dict[str, list[int]] = {}  # run -> positions of its checkpoints' rows
    for i, row in enumerate(rows):
        if not row.is_base:
            by_run.setdefault(row.run, []).append(i)
    marks: list[list[str]] = [[] for _ in rows]
    for run, mine in by_run.items():
        rates = {i: r for i in mine if (r := rows[i].assemble_rate) is not None}
        for i, rate in rates.items():
            if rate == max(rates.values()):
                marks[i].append(BEST_ASSEMBLES)
        pick = early_stopping_pick.get(run)
        losses = {i: loss for i in mine if (loss := rows[i].eval_loss) is not None}
        chosen = ([i for i in mine if rows[i].checkpoint == pick] if pick
                  else [min(losses, key=lambda i: losses[i])] if losses else [])
        for i in chosen:
            marks[i].append(BEST_LOSS)
    return [replace(row, best=tuple(m)) for row, m in zip(rows, marks)]
