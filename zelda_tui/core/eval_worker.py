"""The eval generator's own state in an eval dir: its lock (one generator per run and prompt set)
and worker.json (what it is doing now, with a heartbeat).

Apart from `core.evals` (prompts, answers, scores) because its readers are others: the generator
program writes it, while the idle rule (`services.enforce`, the box mirror) asks whether a
generator is still busy and the Runs screen says what it does.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import atomic, locks
from .evals import EVALS_DIR

WORKER_FILE = "worker.json"  # what the generator of this prompt set is doing now (replaced atomically)
WORKER_LOCK = ".generate.lock"  # one generator per (run, prompt set) at a time
WORKER_STALE_S = 900.0  # a worker silent longer than this is taken for dead (loading 16B weights takes minutes)


@contextmanager
def worker_lock(edir: Path, on_busy: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the prompt set's generator lock (flock; freed when the process dies): a second
    generator for the same set waits its turn (`on_busy` once) instead of doing the same work."""
    with locks.waiting(edir / WORKER_LOCK, on_busy):
        yield


@dataclass(frozen=True)
class WorkerStatus:
    """RUN_DIR/evals/<set>/worker.json: the generator's state (starting, queued, waiting,
    generating, finished, failed), its checkpoint and progress, and a heartbeat."""

    state: str
    mode: str = "once"  # once | alongside | after
    pid: int | None = None
    checkpoint: str | None = None
    done: int = 0
    total: int = 0
    heartbeat: float = 0.0
    message: str = ""

    @property
    def working(self) -> bool:
        """Busy now: an eval counts as work (the idle rule does not destroy its box) unless it
        has been silent for WORKER_STALE_S (then it died without saying so)."""
        return (self.state in ("starting", "queued", "waiting", "generating")
                and time.time() - self.heartbeat < WORKER_STALE_S)


class EvalWorker:
    """The writer of worker.json (the generator program)."""

    def __init__(self, edir: Path, mode: str) -> None:
        self.path = Path(edir) / WORKER_FILE
        self.data: dict[str, Any] = {"state": "starting", "mode": mode, "pid": os.getpid(), "checkpoint": None,
                                     "done": 0, "total": 0, "message": ""}
        self._written = 0.0

    def update(self, **values: Any) -> None:
        changed = any(self.data.get(k) != v for k, v in values.items() if k not in ("done", "total"))
        self.data.update(values)
        now = time.time()
        if changed or now - self._written >= 1.0:  # progress at most once a second
            self.data["heartbeat"] = round(now, 3)
            try:
                atomic.write_text(self.path, json.dumps(self.data))
            except OSError:  # a full disk: the state file is news, not data; the answers' own write says why
                return
            self._written = now


def read_worker(edir: Path) -> WorkerStatus | None:
    try:
        data = json.loads((Path(edir) / WORKER_FILE).read_text(encoding="utf-8"))
        fields = {k: data[k] for k in WorkerStatus.__dataclass_fields__ if k in data}
        return WorkerStatus(**fields)
    except (OSError, ValueError, TypeError):
        return None


def worker_line(run_dir: Path) -> str | None:
    """What the generators of a run are doing, one clause per prompt set (None: none ever ran)."""
    parts = []
    for name, w in workers(run_dir).items():
        if w.state in ("starting", "queued", "waiting", "generating") and not w.working:
            parts.append(f"{name}: eval silent for {(time.time() - w.heartbeat) / 60:.0f} min (ended without a word?)")
        elif w.state == "generating":
            parts.append(f"{name}: evaluating {w.checkpoint}" + (f" ({w.done}/{w.total})" if w.total else ""))
        elif w.state == "queued":
            parts.append(f"{name}: eval queued until training ends")
        elif w.state == "waiting":
            parts.append(f"{name}: eval waiting for the next checkpoint")
        elif w.state == "failed":
            parts.append(f"{name}: eval failed" + (f" ({w.message})" if w.message else ""))
        else:
            parts.append(f"{name}: eval {w.state}")
    return "; ".join(parts) or None


def workers(run_dir: Path) -> dict[str, WorkerStatus]:
    """Each prompt set's generator state in a run dir (sets never evaluated have none)."""
    found = {}
    for edir in sorted((Path(run_dir) / EVALS_DIR).glob("*")):
        status = read_worker(edir)
        if status is not None:
            found[edir.name] = status
    return found
