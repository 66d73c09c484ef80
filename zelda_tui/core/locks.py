"""One holder at a time of some work on a folder, across processes and threads: an flock on a lock
file (freed when its holder dies, so a crash never leaves it stuck), the holder's PID inside for
the message. Used where a second holder would cost money (a recovery renting a second box)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import ZeldaError


class Busy(ZeldaError):
    """Someone holds the lock: `pid` is theirs ("?" when it did not say)."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path}: held by PID {pid}")
        self.pid = pid


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold `path`'s lock for the block, or raise Busy at once. Each call opens its own file description,
    so two threads of one process exclude each other too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(path, os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def holder(path: Path) -> str | None:
    """The PID holding `path`'s lock now, or None when it is free."""
    if not path.exists():
        return None
    try:
        with exclusive(path):
            return None
    except Busy as exc:
        return exc.pid
