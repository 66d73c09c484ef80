"""How a number, size, time or duration becomes display text: the one home for the CLI's tables and the TUI's.

It lives in core (no UI) so the CLI does not import the TUI's widgets to print a size. A missing value is
`missing`: "—" on screen, and the CLI passes "-" (its tables stay plain ASCII Markdown).
"""

from __future__ import annotations

from datetime import datetime

DASH = "—"


def num(value: float | None, spec: str, *, missing: str = DASH, suffix: str = "") -> str:
    """`value` in the format `spec` (".3f", ",.2f", "g") plus `suffix`; `missing` when there is none yet."""
    return missing if value is None else format(value, spec) + suffix


def percent(fraction: float | None, *, missing: str = DASH) -> str:
    """A rate in 0..1 as "12.5%"."""
    return missing if fraction is None else f"{fraction * 100:.1f}%"


def duration(seconds: float | None, *, missing: str = DASH) -> str:
    """A time span the way the runs list shows an ETA: "1h05m", "4m09s", "42s"."""
    if seconds is None:
        return missing
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def human_bytes(n: float) -> str:
    """A file size in binary units: "512 B", "1.5 KB", "2.0 GB"."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def short_time(ts: float) -> str:
    """A local timestamp to the minute; "—" for none (0)."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else DASH


def cut_middle(text: str, width: int, tail_after: str | None = None) -> str:
    """`text` in at most `width` cells, cut in the middle so both ends stay readable.

    With `tail_after`, the end from its last occurrence is kept whole where it fits in two thirds
    of `width` (a run's `_timestamp`, an offer's `@region`): two names that differ only there stay
    different. Otherwise half of what fits is the end.
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    at = text.rfind(tail_after) if tail_after else -1
    keep_tail = min(len(text) - at, width * 2 // 3) if at >= 0 else (width - 1) // 2
    keep_head = width - 1 - keep_tail
    return text[:keep_head] + "…" + (text[-keep_tail:] if keep_tail > 0 else "")
