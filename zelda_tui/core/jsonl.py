"""The one JSONL reader: line numbers, blank-line skipping, byte-range chunks for workers.

Everything that reads dataset files (QA, mix, registry) goes through here so "line 17" means
the same thing everywhere: 1-based physical line numbers, blank lines counted but skipped.
`run_jobs` runs per-chunk work on all cores: a process pool (`make_pool`) plus this process.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar

import orjson

from .errors import ZeldaError

if TYPE_CHECKING:
    from concurrent.futures import Executor

JSONDecodeError = (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError)
CHUNK_BYTES = 2 << 20  # unit of work: small enough that the cores finish close together
INLINE_BYTES = 2 << 20  # below this in total, one process beats starting workers

T = TypeVar("T")
R = TypeVar("R")


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


def event(raw: str | bytes) -> dict | None:
    """One line of a child program's JSON event stream (eval generator, export); None for anything
    else on it (a blank line, a stray print from a library)."""
    try:
        value = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


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


# --- worker processes ----------------------------------------------------------------------
# Modules whose functions run in pool workers; the forkserver imports them once, not every worker.
WORKER_MODULES = ("zelda_tui.core.qa", "zelda_tui.core.mix")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def make_pool(workers: int | None = None) -> "Executor":
    """A process pool: fork when this process has one thread (fast, safe), else forkserver.

    Forking a threaded process (the TUI runs workers and Textual's own threads) can copy a held
    lock into the child; the forkserver forks from a clean single-threaded server instead.
    """
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    ctx: multiprocessing.context.BaseContext
    if threading.active_count() == 1 and "fork" in methods:
        ctx = multiprocessing.get_context("fork")
    elif "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", *WORKER_MODULES])
    else:
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers or cpu_count(), mp_context=ctx)


def run_jobs(
    fn: Callable[[T], R],
    items: Sequence[T],
    on_result: Callable[[int, R], None],
    pool: "Executor | None" = None,
    parallel: bool = False,
    local: Callable[[int], R] | None = None,
) -> None:
    """Call `fn(item)` for every item; `on_result(index, result)` runs in this thread, in any order.

    With a `pool` (a long-lived app's) every item runs there. With `parallel`, a pool of
    cpu_count - 1 workers is started for this call and this process works too, taking items
    from the other end of the queue, so work starts at once instead of after the pool's
    start-up. Otherwise everything runs here, in order. `local(index)` (when given) replaces
    `fn(items[index])` for items done in this process, so it can use data this process holds.
    `fn` must be a module-level function (it is pickled to the workers).
    """
    from concurrent.futures import FIRST_COMPLETED, as_completed, wait

    here = local or (lambda i: fn(items[i]))
    if pool is not None:
        index = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for fut in as_completed(index):
            on_result(index[fut], fut.result())
        return
    n_workers = min(cpu_count() - 1, len(items) - 1)
    if not parallel or n_workers < 1:
        for i in range(len(items)):
            on_result(i, here(i))
        return
    executor = make_pool(n_workers)
    todo = deque(range(len(items)))
    inflight: dict = {}
    try:
        while todo or inflight:
            while todo and len(inflight) < 2 * n_workers:  # keep the workers fed, not flooded
                i = todo.popleft()
                inflight[executor.submit(fn, items[i])] = i
            for fut in [f for f in inflight if f.done()]:
                on_result(inflight.pop(fut), fut.result())
            if todo:
                i = todo.pop()
                on_result(i, here(i))
            elif inflight:
                wait(inflight, return_when=FIRST_COMPLETED)
    finally:
        executor.shutdown(cancel_futures=True)
