"""A log pane for a followed file: appends batches of complete lines, keeps the last N.

The reading is done elsewhere (a `core.runs.LineTail` on a worker thread); this widget only
shows what it is handed, one `append` per batch, and follows the end while the user has not
scrolled up.
"""

from __future__ import annotations

from typing import Iterable

from textual.widgets import Log

MAX_LINES = 2_000


def clean_line(line: str) -> str:
    """What a terminal would show for one line: the text after the last carriage return."""
    if "\r" in line:
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
    return line or " "  # Log drops empty strings; keep blank lines as blank lines


class LogView(Log):
    """A `Log` capped to the last `max_lines` lines, fed in batches."""

    def __init__(self, max_lines: int = MAX_LINES, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id, classes=classes)

    def append(self, lines: Iterable[str]) -> None:
        """Add complete lines (one refresh for the whole batch)."""
        batch = [clean_line(line) for line in lines]
        if self.max_lines is not None and len(batch) > self.max_lines:
            batch = batch[-self.max_lines :]
        if batch:
            self.write_lines(batch)
            if self.auto_scroll:  # again once laid out: a pane filled before its first layout would stay at the top
                self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def reset(self) -> None:
        self.clear()
        self.auto_scroll = True

    def follow(self) -> None:
        """Jump to the end and keep following new lines."""
        self.auto_scroll = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)
