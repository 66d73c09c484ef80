"""Atomic writes: a temp file in the same directory, fsync, then rename.

A crash half-way leaves the previous file untouched; readers never see a partial file. Also
the room there is for a write, checked before anything big starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_open(path: Path, mode: str = "wb", perms: int | None = None) -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit it replaces `path`, on error it is removed.
    perms: the new file's permission bits (default: like any new file, 0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK if perms is None else perms)  # mkstemp makes 0600; a replaced file should look like any other
    try:
        text = "b" not in mode
        with os.fdopen(fd, mode, encoding="utf-8" if text else None, newline="" if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: Path, text: str, perms: int | None = None) -> None:
    with atomic_open(path, "w", perms) as fh:
        fh.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def free_space(path: Path) -> tuple[int, Path]:
    """(free bytes, the dir measured) on the filesystem that will hold `path`: its nearest existing
    parent, since what is about to be written is often not there yet."""
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free, probe
