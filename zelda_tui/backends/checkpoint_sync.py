"""A remote run's checkpoints come home as they land, so losing the box loses at most the steps
since the last one.

Each new complete checkpoint on the box (the whole `checkpoint-<step>/`: adapter, optimizer,
scheduler, RNG and trainer state: what resume needs) is copied into the local run dir's
`checkpoints/`, every file sha256-verified against the digest the box computed. The copy goes
into `checkpoints/.incoming-<step>/` (a name no reader takes for a checkpoint), gets a manifest
of those digests (`.zelda-sha256.json`), and is then renamed into place: a checkpoint half-copied
when the box died is never seen as complete. A checkpoint here with a manifest is "safe at home";
`newest_good` re-checks the digests before one is used (a recovery), falling back to the previous
one when a file no longer matches.

The copy runs in a thread of its own (`CheckpointSync`) with its own SSH session, started by the
mirror when the trainer logs a `checkpoint` event or the link comes up: the log tail never waits
for a copy.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..core import atomic, locks, runs
from . import box_files, remote_runs

if TYPE_CHECKING:  # paramiko loads when a remote step runs, not at app start
    from .ssh import SshSession

MANIFEST = ".zelda-sha256.json"  # in checkpoint-<step>/: {relative path: sha256} as the box computed them
STAGING = ".incoming-"  # checkpoints/.incoming-<step>/: a copy in progress, resumed by the next pass
LOCK = ".checkpoint-sync.lock"
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Synced:
    """One checkpoint brought home: its step, the bytes moved, and where the [backup] copy went ("" if none)."""

    step: int
    bytes: int
    backup: str = ""
    backup_error: str = ""


@dataclass(frozen=True)
class Good:
    """The newest synced checkpoint whose files still match their digests, and what was skipped on the way."""

    step: int | None
    path: Path | None
    skipped: list[str] = field(default_factory=list)


def synced(run_dir: Path) -> list[tuple[int, Path]]:
    """Checkpoints safe at home (copied whole and verified: a manifest), oldest first; not re-verified."""
    return [(step, p) for step, p in runs.checkpoints(run_dir) if (p / MANIFEST).is_file()]


def last_synced(run_dir: Path) -> str | None:
    """`checkpoints/checkpoint-<step>` of the newest checkpoint safe at home (None: none yet)."""
    found = synced(run_dir)
    return f"{runs.CHECKPOINTS}/{found[-1][1].name}" if found else None


def verify(ckpt: Path) -> str | None:
    """None when every file the manifest names is here with its digest and nothing else is; else why not."""
    try:
        manifest = json.loads((ckpt / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{ckpt.name}: manifest unreadable ({exc})"
    if not isinstance(manifest, dict) or not manifest:
        return f"{ckpt.name}: manifest is empty"
    for rel, want in sorted(manifest.items()):
        path = ckpt / rel
        if not path.is_file():
            return f"{ckpt.name}: {rel} is missing"
        if box_files.sha256_file(path) != want:
            return f"{ckpt.name}: {rel} fails its sha256 check"
    return None


def newest_good(run_dir: Path) -> Good:
    """The checkpoint a recovery resumes from: the newest synced one that verifies (older ones are
    tried in turn, each failure said)."""
    skipped: list[str] = []
    for step, path in reversed(synced(run_dir)):
        problem = verify(path)
        if problem is None:
            return Good(step, path, skipped)
        skipped.append(problem)
    return Good(None, None, skipped)


def sync_newest(session: SshSession, remote_dir: str, run_dir: Path, keep: int = 2,
                backup: tuple[str, str] | None = None, progress: Say = _quiet) -> Synced | None:
    """Bring the box's newest complete checkpoint home if it is not here yet (None: nothing new).

    `keep`: how many synced checkpoints stay here (older ones that this sync wrote are removed);
    `backup`: (target host:path of the run, rsync -e) to which the box also rsyncs the checkpoint.
    """
    steps = remote_runs.checkpoint_steps(session, remote_dir)
    root = Path(run_dir) / runs.CHECKPOINTS
    if not steps or steps[-1] in {s for s, _ in synced(run_dir)}:
        return None
    step = steps[-1]
    name = f"checkpoint-{step}"
    final = root / name
    # a copy of the same checkpoint fetched earlier (`train fetch`) is completed in place: equal files are skipped
    into = final if final.is_dir() else root / f"{STAGING}{step}"
    for stale in root.glob(f"{STAGING}*"):  # an older interrupted copy: the box has a newer checkpoint now
        if stale != into:
            shutil.rmtree(stale, ignore_errors=True)
    digests: dict[str, str] = {}
    moved = box_files.download_tree(session, posixpath.join(remote_dir, runs.CHECKPOINTS, name), into,
                                    f"sync {name}", progress, digests)
    done = into / runs.CHECKPOINT_DONE
    try:
        json.loads(done.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # caught while the trainer was still writing it: the next pass copies it again
        done.unlink(missing_ok=True)
        return None
    atomic.write_text(into / MANIFEST, json.dumps(digests, indent=1, sort_keys=True) + "\n")
    if into != final:
        os.replace(into, final)
    _prune(run_dir, keep)
    if backup is None:
        return Synced(step, moved)
    target = f"{backup[0].rstrip('/')}/{runs.CHECKPOINTS}/{name}"
    try:
        remote_runs.rsync_to_backup(session, posixpath.join(remote_dir, runs.CHECKPOINTS, name), target, backup[1])
    except Exception as exc:  # noqa: BLE001 - the copy home stands; the backup is retried with the next checkpoint
        return Synced(step, moved, target, str(exc))
    return Synced(step, moved, target)


def _prune(run_dir: Path, keep: int) -> None:
    """Synced checkpoints past the newest `keep` (at least 2: a bad one falls back to the previous)."""
    for _, path in synced(run_dir)[: -max(keep, 2)]:
        shutil.rmtree(path, ignore_errors=True)


class CheckpointSync:
    """The background copier of one remote run: `wanted()` asks for a pass, `close()` ends it.

    Passes never overlap and a request during a pass makes one more pass afterwards. One process
    copies a run at a time (flock on the run dir's `.checkpoint-sync.lock`)."""

    def __init__(self, connect: Callable[[], SshSession], remote_dir: str, run_dir: Path, keep: int = 2,
                 backup: tuple[str, str] | None = None, say: Say = _quiet, warn: Say | None = None) -> None:
        """`say`: a checkpoint came home; `warn`: a pass or a backup failed (default: `say`)."""
        self.connect, self.remote_dir, self.run_dir = connect, remote_dir.rstrip("/"), Path(run_dir)
        self.keep, self.backup, self.say, self.warn = keep, backup, say, warn or say
        self._cond = threading.Condition()
        self._pending = self._closing = False
        self._thread: threading.Thread | None = None
        self.last: Synced | None = None
        self.error = ""

    def wanted(self) -> None:
        with self._cond:
            if self._closing:
                return
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"ckpt-sync {self.run_dir.name}", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self, wait_s: float = 0.0) -> None:
        """No new passes; one asked for already still runs. `wait_s`: how long to wait for it."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and wait_s > 0:
            thread.join(wait_s)

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                self._pending = False
            self.run_once()

    def run_once(self) -> Synced | None:
        """One pass, here and now (the thread's work; tests call it directly)."""
        lock = locks.FileLock(self.run_dir / LOCK)
        try:
            if not lock.try_acquire():
                return None  # another process copies this run's checkpoints
            started = time.monotonic()
            with self.connect() as session:
                got = sync_newest(session, self.remote_dir, self.run_dir, self.keep, self.backup)
        except Exception as exc:  # noqa: BLE001 - a worker: the link dropping mid-copy is normal; the next pass resumes
            self.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.warn(f"checkpoint sync: {self.error} (what arrived is kept; it resumes with the next pass)")
            return None
        finally:
            lock.release()
        self.error = ""
        if got is not None:
            self.last = got
            self.say(f"checkpoint-{got.step} is safe at home ({got.bytes / 1e6:.1f} MB, sha256 verified, "
                     f"{time.monotonic() - started:.1f} s)")
            if got.backup_error:
                self.warn(f"checkpoint-{got.step}: backup to {got.backup} failed: {got.backup_error}")
        return got
