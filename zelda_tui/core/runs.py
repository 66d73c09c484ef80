"""The run directory contract (same layout locally and on a remote box).

    RUN_DIR/run.toml          frozen config of the run (train_config.RunConfig)
    RUN_DIR/data/             mix files (train/eval jsonl, eval_sources.txt, metadata.json)
    RUN_DIR/metrics.jsonl     one JSON object per event, append-only
    RUN_DIR/train.log         stdout + stderr of the trainer
    RUN_DIR/status.json       state, pid, host, started, heartbeat, checkpoints (atomic writes)
    RUN_DIR/checkpoints/checkpoint-<step>/
    RUN_DIR/lora_adapters/    final adapters + tokenizer + model card
    RUN_DIR/.remote           only in the local copy of a remote run: {"host", "remote_dir"}, so the
                              run dir says on its own where the run lives (and is never signalled here)

Readers here tolerate a partially written last line: `LineTail` keeps a byte offset and
only ever returns complete lines, so a reader never sees a line twice or half.

A run's life is here too: `RunState` names every state, `TRANSITIONS` says which writes of
status.json may follow which, `set_state` is how the app (runner, services) writes one, and
`observed_state` is the one place that decides a run "died" (its process is gone while
status.json still says it runs). status.json is the truth about the process; SQLite only
indexes runs (host, pid, remote dir) and is rebuilt from run dirs when lost.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable

from . import atomic
from .errors import ZeldaError

RUN_TOML = "run.toml"
DATA_DIR = "data"
METRICS = "metrics.jsonl"
TRAIN_LOG = "train.log"
STATUS = "status.json"
CHECKPOINTS = "checkpoints"
ADAPTERS = "lora_adapters"
REMOTE_MARKER = ".remote"
CHECKPOINT_DONE = "trainer_state.json"  # written last by the trainer: a checkpoint without it is incomplete



class RunState(StrEnum):
    """Every state a run can be shown in. The first seven are written into status.json; the
    last three are only ever observed (never written): `died` (status.json says the process
    runs, the process is gone), `lost` (a remote run whose box can no longer say), `unknown`
    (no readable status.json)."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"
    DIED = "died"
    LOST = "lost"
    UNKNOWN = "unknown"

    @property
    def is_live(self) -> bool:
        """Not finished: followers keep following, `stop` may try, the idle timer waits."""
        return self in _LIVE

    @property
    def has_process(self) -> bool:
        """A trainer process should exist (so its absence means the run died)."""
        return self in _PROCESS

    @property
    def is_stoppable(self) -> bool:
        """What the Runs screen offers to stop (a stop in progress is not asked twice)."""
        return self in (RunState.STARTING, RunState.RUNNING)

    @property
    def is_failure(self) -> bool:
        """Ended without finishing, or cannot go on where it was (`lost`): `train status` and `tail` exit 1."""
        return self in (RunState.FAILED, RunState.DIED, RunState.LOST)

    @classmethod
    def of(cls, value: str | None) -> "RunState":
        """The state a string names; anything else (an older or hand-edited file) is `unknown`."""
        try:
            return cls(value) if value is not None else cls.UNKNOWN
        except ValueError:
            return cls.UNKNOWN


_LIVE = frozenset({RunState.CREATED, RunState.STARTING, RunState.RUNNING, RunState.STOPPING})
_PROCESS = frozenset({RunState.STARTING, RunState.RUNNING, RunState.STOPPING})
WRITTEN = (RunState.CREATED, RunState.STARTING, RunState.RUNNING, RunState.STOPPING, RunState.STOPPED,
           RunState.COMPLETED, RunState.FAILED)

# Which state status.json may hold after which (a state may always be written again: heartbeats).
# A process state may become `starting` again: that is a resume after the process died, which
# status.json cannot know (died is observed, never written). `completed` is final.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.CREATED: frozenset({RunState.STARTING, RunState.FAILED}),
    RunState.STARTING: frozenset({RunState.RUNNING, RunState.STOPPING, RunState.STOPPED, RunState.COMPLETED,
                                  RunState.FAILED}),
    RunState.RUNNING: frozenset({RunState.STOPPING, RunState.STOPPED, RunState.COMPLETED, RunState.FAILED,
                                 RunState.STARTING}),
    RunState.STOPPING: frozenset({RunState.STOPPED, RunState.COMPLETED, RunState.FAILED, RunState.STARTING}),
    RunState.STOPPED: frozenset({RunState.STARTING, RunState.FAILED}),
    RunState.FAILED: frozenset({RunState.STARTING}),
    RunState.COMPLETED: frozenset(),
    RunState.UNKNOWN: frozenset(WRITTEN),  # no status.json yet (an upload that never finished)
}


def can_become(current: RunState, new: RunState) -> bool:
    return new == current or new in TRANSITIONS.get(current, frozenset())


def run_name(model_name: str, now: datetime | None = None) -> str:
    """`<model.name>_<UTC timestamp>`, e.g. zelda-16b-v1_20261124T180000Z."""
    now = now or datetime.now(timezone.utc)
    return f"{model_name}_{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


@dataclass
class RunStatus:
    state: str = "created"
    pid: int | None = None
    host: str = field(default_factory=socket.gethostname)
    started: float | None = None
    heartbeat: float | None = None
    step: int = 0
    max_steps: int | None = None
    epoch: float = 0.0
    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    best_metric: float | None = None
    message: str = ""
    finished: float | None = None

    @classmethod
    def from_json(cls, data: dict) -> "RunStatus":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def read_status(run_dir: Path) -> RunStatus | None:
    path = Path(run_dir) / STATUS
    try:
        return RunStatus.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError):  # atomic writes make this rare; treat as unknown
        return None


def write_status(run_dir: Path, status: RunStatus) -> None:
    """status.json, atomically; only a state that may be written (never died/lost/unknown)."""
    if RunState.of(status.state) not in WRITTEN:
        raise ValueError(f"status.json cannot say {status.state!r} (one of {', '.join(WRITTEN)})")
    atomic.write_text(Path(run_dir) / STATUS, json.dumps(asdict(status), indent=2) + "\n")


def current_state(run_dir: Path) -> RunState:
    """What status.json says (`unknown` when it is missing or unreadable); never observes the process."""
    status = read_status(run_dir)
    return RunState.UNKNOWN if status is None else RunState.of(status.state)


def require_transition(run_dir: Path, state: RunState) -> None:
    """Refuse, before acting, a change the run's life does not allow (e.g. starting a completed run)."""
    current = current_state(run_dir)
    if not can_become(current, state):
        raise ZeldaError(f"{Path(run_dir).name}: a {current} run cannot become {state}")


def set_state(run_dir: Path, state: RunState, **changes: Any) -> RunStatus:
    """Move a run to `state` in its status.json (plus any other fields), if its life allows it.

    The app's writers (the runner, the services) come through here; the trainer writes its own
    progress with `write_status`, in the same vocabulary.
    """
    require_transition(run_dir, state)
    status = read_status(run_dir) or RunStatus()
    status.state = str(state)
    for key, value in changes.items():
        setattr(status, key, value)
    write_status(run_dir, status)
    return status


def observed_state(status: RunStatus | None, process_alive: Callable[[], bool], box_lost: bool = False) -> RunState:
    """The one place a run is declared "died" or "lost": status.json says a trainer process runs
    (starting, running, stopping) and `process_alive` (asked only then) says it is gone: died; a run
    not finished whose box is gone (`box_lost`: SSH unreachable for [recovery] lost_after_minutes,
    or the provider says the instance is gone or stopped): lost. No status.json is `unknown`."""
    if status is None:
        return RunState.LOST if box_lost else RunState.UNKNOWN
    state = RunState.of(status.state)
    if box_lost and state.is_live:
        return RunState.LOST
    if state.has_process and not process_alive():
        return RunState.DIED
    return state


def write_remote_marker(run_dir: Path, host: str, remote_dir: str) -> None:
    """Mark a local run dir as the copy of a run on `host` (an SSH alias) in `remote_dir`."""
    data = {"host": host, "remote_dir": remote_dir}
    if read_remote_marker(run_dir) != data:
        atomic.write_text(Path(run_dir) / REMOTE_MARKER, json.dumps(data) + "\n")


def read_remote_marker(run_dir: Path) -> dict | None:
    """{"host", "remote_dir"} of a remote run's local copy; None for a local run."""
    try:
        data = json.loads((Path(run_dir) / REMOTE_MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"host": "?", "remote_dir": "?"}  # unreadable, but present: still not a local run
    if not isinstance(data, dict) or not isinstance(data.get("host"), str) or not isinstance(data.get("remote_dir"), str):
        return {"host": "?", "remote_dir": "?"}
    return {"host": data["host"], "remote_dir": data["remote_dir"]}


def append_metric(run_dir: Path, event: str, **values: Any) -> dict:
    """Append one event line; a single write() of a complete line keeps readers whole."""
    record = {"t": round(time.time(), 3), "event": event, **values}
    line = json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n"
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as fh:
        fh.write(line)
    return record


@dataclass
class LineTail:
    """Incremental reader of an append-only file: byte offset + held partial line.

    Only complete lines are returned, each exactly once, in order; a line still being written
    is held until its newline arrives.
    """

    path: Path
    offset: int = 0
    partial: bytes = b""

    def read_new(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        return self.feed(data)

    def feed(self, data: bytes) -> list[str]:
        buf = self.partial + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self.partial = buf
            return []
        self.partial = buf[cut + 1 :]
        return buf[:cut].decode("utf-8", "replace").split("\n")


def parse_metrics(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a corrupt line is skipped, never fatal for a viewer
    return out


def read_metrics(run_dir: Path) -> list[dict]:
    return parse_metrics(LineTail(Path(run_dir) / METRICS).read_new())


_CKPT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (half-written ones lack trainer_state.json)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / CHECKPOINT_DONE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1][1] if found else None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
