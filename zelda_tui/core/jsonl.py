"""The one JSONL reader: line numbers, blank-line skipping, byte-range chunks for workers.

Everything that reads dataset files (QA, mix, registry) goes through here so "line 17" means
the same thing everywhere: 1-based physical line numbers, blank lines counted but skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

from .errors import ZeldaError

JSONDecodeError = (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError)


@dataclass(frozen=True)
class Chunk:
    """A byte range of a file that starts at a line start and ends after a newline (or EOF)."""

    path: Path
    start: int
    end: int


def read_bytes(path: Path) -> bytes:
    """Read a dataset file, turning OS errors into one-line user errors."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ZeldaError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ZeldaError(f"{path}: is a directory, expected a .jsonl file") from None
    except PermissionError:
        raise ZeldaError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ZeldaError(f"{path}: cannot read ({exc.strerror})") from None


def chunks(path: Path, size: int, parts: int) -> list[Chunk]:
    """Split a file of `size` bytes into up to `parts` newline-aligned chunks."""
    if parts <= 1 or size == 0:
        return [Chunk(path, 0, size)]
    bounds = [0]
    with open(path, "rb") as fh:
        for i in range(1, parts):
            target = max(size * i // parts, bounds[-1])
            fh.seek(target)
            fh.readline()  # finish the line we landed in
            pos = min(fh.tell(), size)
            if pos > bounds[-1]:
                bounds.append(pos)
    if bounds[-1] != size:
        bounds.append(size)
    return [Chunk(path, a, b) for a, b in zip(bounds, bounds[1:])]


def read_chunk(chunk: Chunk) -> bytes:
    with open(chunk.path, "rb") as fh:
        fh.seek(chunk.start)
        return fh.read(chunk.end - chunk.start)


def split_lines(data: bytes) -> list[bytes]:
    """Physical lines of a buffer (without the newline); a trailing newline adds no empty line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def loads(raw: bytes) -> Any:
    """Parse one line the way Python's json module does (the mix contract), fast where possible.

    orjson is used first; it refuses a few inputs json accepts (NaN, lone surrogates, huge
    integers), which fall back to json.loads so nothing valid is called an error.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def iter_records(path: Path) -> Iterator[tuple[int, Any | None, bytes]]:
    """Yield (line number, parsed value or None on a parse error, raw line) for non-blank lines."""
    for lineno, raw in enumerate(split_lines(read_bytes(path)), 1):
        if not raw.strip():
            continue
        try:
            yield lineno, loads(raw), raw
        except JSONDecodeError:
            yield lineno, None, raw


def file_signature(path: Path) -> tuple[int, int]:
    """(size, mtime_ns): the cache key part that says a file is unchanged."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
