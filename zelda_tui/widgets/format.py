"""Number and time formatting shared by the screens."""

from __future__ import annotations

from datetime import datetime


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def short_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "—"


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
