"""Helpers shared by the CLI commands: JSON output, progress bars, markdown tables."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..services import Services, build_services

# `file:line [key]: ...`, the shape core.errors.where() gives messages
_WHERE = re.compile(r"^(?P<file>[^\s:]+)(?::(?P<line>\d+))?(?: \[(?P<key>[^\]]+)\])?: ")
STDOUT_GONE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


def print_error(message: str, as_json: bool) -> None:
    """The one place a command's error reaches the user: one line on stderr, or with --json one
    object `{"error", "file", "line", "key"}` (file/line/key null when the message names none)."""
    if not as_json:
        print(f"zelda-tui: error: {message}", file=sys.stderr)
        return
    found = _WHERE.match(message)
    file = line = key = None
    if found and (found["line"] or found["key"] or "/" in found["file"] or Path(found["file"]).exists()):
        file, key = found["file"], found["key"]
        line = int(found["line"]) if found["line"] else None
    sys.stderr.write(json.dumps({"error": message, "file": file, "line": line, "key": key}) + "\n")


def stdout_gone() -> int:
    """stdout's reader closed early (`| head -1`): stop quietly. stdout is pointed at /dev/null so
    the interpreter's last flush does not raise the same error again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return STDOUT_GONE


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def progress_bar(args: argparse.Namespace, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a TTY stderr, nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def open_services(args: argparse.Namespace) -> Services:
    return build_services(args.config)


def table(headers: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A markdown pipe table (readable in a terminal, pasteable into notes)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = [i < len(align) and align[i] == "r" for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])
