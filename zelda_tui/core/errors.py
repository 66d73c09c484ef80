"""One error type for everything a user can get wrong.

Every message is one line that names where the problem is (file, line, key) so the CLI can
print it as-is and the TUI can show it in a notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ZeldaError(Exception):
    """A user-facing failure: `message` is one line; `exit_code` 1 = failed, 2 = usage."""

    message: str
    exit_code: int = 1

    def __str__(self) -> str:
        return self.message


def where(path: Path | str, line: int | None = None, key: str | None = None) -> str:
    """Format a location as `file:line [key]` for error messages."""
    text = str(path)
    if line is not None:
        text += f":{line}"
    if key:
        text += f" [{key}]"
    return text


class NoCheckpoints(ZeldaError):
    """A run has no checkpoint yet (asked for the latest): a caller that can do without one (the Runs
    screen's fetch then takes the adapters alone) catches this type, never the message's wording."""


class ConfigError(ZeldaError):
    """A problem in config.toml (broken TOML, wrong type, unknown reference)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
