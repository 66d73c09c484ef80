"""One holder at a time of some work on a folder, across processes and threads: an flock on a lock
file (freed when its holder dies, so a crash never leaves it stuck), the holder's PID inside for
the message. The one implementation behind every lock file of the workspace and run dirs: a mix
build (`mixes/.NAME.lock`), an eval generator (`evals/<set>/.generate.lock`), a run's mirror
(`.mirror.lock`), checkpoint copier (`.checkpoint-sync.lock`) and recovery (`.recover.lock`)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import ZeldaError


class Busy(ZeldaError):
    """Someone holds the lock: `pid` is theirs ("?" when it did not say)."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path}: held by PID {pid}")
        self.pid = pid


class FileLock:
    """The lock on one file. Each acquire opens its own file description, so two FileLocks of one
    process (two threads) exclude each other too; `release` (or the process dying) frees it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.holder_pid: str | None = None  # after a refused try: who held it ("?" when it did not say)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take it now, or False (with `holder_pid` set) when another holds it. True when already ours."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.holder_pid = _read_pid(fd)
            os.close(fd)
            return False
        self._took(fd)
        return True

    def acquire(self, on_busy: Callable[[], None] | None = None) -> None:
        """Take it, waiting for the holder to let go; `on_busy` is called once, before the wait."""
        if self.try_acquire():
            return
        if on_busy is not None:
            on_busy()
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._took(fd)

    def release(self) -> None:
        """Let go (nothing when not held). The PID stays in the file; only a holder's counts."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the description releases the flock

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _took(self, fd: int) -> None:
        """Ours now: say so in the file. The PID is written before the old tail is cut, so a reader
        sees a whole PID on the first line (an old holder's, at worst), never an empty file."""
        pid = f"{os.getpid()}\n".encode()
        try:
            os.pwrite(fd, pid, 0)
            os.ftruncate(fd, len(pid))
        except OSError:
            pass  # a full disk: the lock holds all the same; a waiter may be told an earlier holder's PID, or "?"
        except BaseException:
            os.close(fd)
            raise
        self._fd, self.holder_pid = fd, str(os.getpid())


def _read_pid(fd: int) -> str:
    first = os.pread(fd, 32, 0).decode("ascii", "replace").split("\n", 1)[0].strip()
    return first or "?"


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold `path`'s lock for the block, or raise Busy at once."""
    lock = FileLock(path)
    if not lock.try_acquire():
        raise Busy(lock.path, lock.holder_pid or "?")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def waiting(path: Path, on_busy: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold `path`'s lock for the block, waiting for its holder first (`on_busy` once, if so)."""
    lock = FileLock(path)
    lock.acquire(on_busy)
    try:
        yield
    finally:
        lock.release()


def holder(path: Path) -> str | None:
    """The PID holding `path`'s lock now, or None when it is free. Only looks: it never creates the
    file nor writes its own PID (a shared lock, for an instant, so two lookers never refuse each other)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd)
        return None
    finally:
        os.close(fd)
