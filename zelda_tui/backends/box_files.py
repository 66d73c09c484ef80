"""Moving files to and from a GPU box over SSH: a half-copied file is never taken for a whole one.

A run's data, this program's code and a run's checkpoints and logs cross a link that may drop,
a disk that may fill and a box that may be hostile; what lands under a final name must be exactly
what was sent. So uploads and downloads go through `.part` files: resumed from their size after an
interruption, sha256-verified, then renamed into place; files whose sha256 already matches are
skipped. Small uploaded files go together as one tar into a `*.part` staging dir, are verified
there and then moved in. A `*.part` name is never a final one: remote_tree never lists it.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import secrets
import shlex
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..core.errors import ZeldaError
from .ssh_base import RemoteError, RemoteMissing

if TYPE_CHECKING:  # the session comes from the caller; importing it here would load paramiko at app start
    from .remote_runs import RemoteSettings
    from .ssh import SshSession

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Transfer:
    local: Path
    remote: str
    sha256: str
    size: int


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def transfer(local: Path, remote: str) -> Transfer:
    return Transfer(Path(local), remote, sha256_file(local), Path(local).stat().st_size)


# --- the box's disk ------------------------------------------------------------------
def disk_usage(session: SshSession, path: str) -> tuple[int, float]:
    """(free bytes, used percent) of the filesystem holding path (or its nearest existing parent)."""
    probe = f"p={shlex.quote(path)}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; df -Pk \"$p\" | tail -1"
    fields = session.check(probe, "check free disk").split()
    try:
        return int(fields[3]) * 1024, float(fields[4].rstrip("%"))
    except (IndexError, ValueError):
        raise RemoteError(f"{session.host.label}: check free disk: cannot read df output {fields!r}") from None


# --- uploads -------------------------------------------------------------------------
# `sha256sum < file` prints only the digest: names with a backslash or newline, which
# sha256sum escapes in its listing, never need parsing back. Output: "<index> <digest>".
_DIGESTS = 'i=0; for f in "$@"; do if [ -f "$f" ] && d=$(sha256sum < "$f"); then echo "$i ${d%% *}"; fi; i=$((i+1)); done'


def remote_digests(session: SshSession, paths: list[str]) -> dict[str, str]:
    """sha256 of the remote files that exist (missing ones are simply absent), matched by position."""
    out: dict[str, str] = {}
    for i in range(0, len(paths), 200):
        batch = paths[i : i + 200]
        res = session.run(f"sh -c {shlex.quote(_DIGESTS)} sh " + " ".join(shlex.quote(p) for p in batch), timeout=3600)
        for line in res.stdout.splitlines():
            index, _, digest = line.partition(" ")
            if index.isdigit() and int(index) < len(batch) and len(digest) == 64:
                out[batch[int(index)]] = digest
    return out


# A tree of small files (this program's code, a run's logs) goes as tar archives over one exec
# channel each into a staging dir, is verified there in one batch and moved into place with one
# command: a handful of round trips instead of ~7 per file. Big files keep the resumable .part path.
SMALL_FILE = 1_000_000  # bytes: below this a file goes in the tar (resuming it would save nothing)
TAR_BATCH = 32 << 20  # bytes of file data per archive: what is held in memory at once
# "<staging> <first index> <final path>...": staging/<index> -> final path, in order
_MOVE = 's=$1; i=$2; shift 2; for f in "$@"; do mv -f -- "$s/$i" "$f" || exit 1; i=$((i+1)); done'


def upload(session: SshSession, items: list[Transfer], step: str, progress: Progress) -> int:
    """Copy files whose remote sha256 differs; returns the bytes sent. Nothing half-copied or
    unverified is ever under a final name: small files arrive in a staging dir, big ones as .part."""
    have = remote_digests(session, [t.remote for t in items])
    todo = [t for t in items if have.get(t.remote) != t.sha256]
    if not todo:
        return 0
    progress(f"{step}: {len(todo)} file(s), {sum(t.size for t in todo) / 1e6:.1f} MB to send"
             + (f" ({len(items) - len(todo)} already there)" if len(todo) < len(items) else ""))
    small = [t for t in todo if t.size < SMALL_FILE]
    big = [t for t in todo if t.size >= SMALL_FILE]
    sent = _upload_small(session, small, step) if small else 0
    return sent + (_upload_big(session, big, step, progress) if big else 0)


def _upload_small(session: SshSession, items: list[Transfer], step: str) -> int:
    """Tar the files (named by their index) into a fresh staging dir beside their final place (the
    same filesystem: the moves are renames), verify every sha256 there, then move them all in."""
    label, q = session.host.label, shlex.quote
    root = posixpath.commonpath([posixpath.dirname(t.remote) for t in items])
    staging = posixpath.join(root, f".zelda-upload-{secrets.token_hex(6)}.part")
    need = sum(t.size for t in items)
    try:
        for first, batch in _tar_batches(items):
            data = _tar(batch, first, label, step)
            try:
                res = session.run(f"mkdir -p {q(staging)} && tar -xof - -C {q(staging)}", timeout=600, stdin=data)
            except RemoteError as exc:
                raise RemoteError(f"{label}: {step}: sending {len(items)} file(s) failed: "
                                  f"{str(exc).removeprefix(label + ': ')}; nothing was put in place: "
                                  "run the command again") from None
            if res.rc != 0:
                _remove(session, staging)  # first: what the failed unpack wrote is not free space
                free, _ = disk_usage(session, root)
                if "No space left" in res.stderr or free < need:
                    raise RemoteError(f"{label}: {step}: the remote disk is full ({free / 1e6:.1f} MB free under "
                                      f"{root}, {len(items)} file(s) need {need / 1e6:.1f} MB); nothing was put in "
                                      "place: free some space and run the command again")
                err = (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1]
                raise RemoteError(f"{label}: {step}: unpacking {len(items)} file(s) into {staging} failed: {err}")
        staged = [posixpath.join(staging, str(i)) for i in range(len(items))]
        got = remote_digests(session, staged)
        for path, item in zip(staged, items):
            if got.get(path) != item.sha256:
                raise RemoteError(f"{label}: {step}: {item.remote} arrived corrupted (sha256 "
                                  f"{(got.get(path) or 'missing')[:12]} != {item.sha256[:12]}); nothing was put in "
                                  "place: run the command again")
        for i in range(0, len(items), 200):  # each file verified: moving it in is a rename
            batch = items[i : i + 200]
            dirs = sorted({posixpath.dirname(t.remote) for t in batch})
            last = f" && rm -rf {q(staging)}" if i + 200 >= len(items) else ""
            session.check(f"mkdir -p {' '.join(q(d) for d in dirs)} && sh -c {q(_MOVE)} sh {q(staging)} {i} "
                          + " ".join(q(t.remote) for t in batch) + last, f"{step}: move into place")
    except BaseException:
        _remove(session, staging)
        raise
    return need


def _tar_batches(items: list[Transfer]) -> list[tuple[int, list[Transfer]]]:
    """(index of the first file, files) in runs of at most TAR_BATCH bytes (one file at least)."""
    out: list[tuple[int, list[Transfer]]] = []
    first, size = 0, 0
    for i, item in enumerate(items):
        if i > first and size + item.size > TAR_BATCH:
            out.append((first, items[first:i]))
            first, size = i, 0
        size += item.size
    out.append((first, items[first:]))
    return out


def _tar(items: list[Transfer], first: int, label: str, step: str) -> bytes:
    """An archive of the files named first, first+1, ... (no names, owners or links of ours on the box)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for n, item in enumerate(items, first):
            try:
                data = item.local.read_bytes()
                mode = item.local.stat().st_mode & 0o777
            except OSError as exc:
                raise RemoteError(f"{label}: {step}: reading {item.local} here failed: {exc.strerror or exc}; "
                                  "nothing was put in place") from None
            info = tarfile.TarInfo(str(n))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _remove(session: SshSession, staging: str) -> None:
    """Best effort (the connection may be what failed): a staging dir left behind is only ever
    named *.part, never a final name."""
    try:
        session.run(f"rm -rf {shlex.quote(staging)}", timeout=120)
    except Exception:  # noqa: BLE001  cleaning up after a failure must not hide it
        pass


def _upload_big(session: SshSession, todo: list[Transfer], step: str, progress: Progress) -> int:
    """One file at a time through its .part file: resumed from its size, verified, renamed into place."""
    dirs = sorted({posixpath.dirname(t.remote) for t in todo})
    session.check("mkdir -p " + " ".join(shlex.quote(d) for d in dirs), f"{step}: create directories")
    sftp = session.sftp
    sent = 0
    for n, item in enumerate(todo, 1):
        part = item.remote + ".part"
        try:
            start = sftp.stat(part).st_size or 0
        except FileNotFoundError:
            start = 0
        if start > item.size:
            start = 0
        progress(f"{step}: {posixpath.basename(item.remote)} ({n}/{len(todo)}, {item.size / 1e6:.1f} MB"
                 + (f", resuming at {start / 1e6:.1f} MB" if start else "") + ")")
        try:
            with open(item.local, "rb") as src, sftp.open(part, "ab" if start else "wb") as dst:
                dst.set_pipelined(True)
                src.seek(start)
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    sent += len(chunk)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            free, _ = disk_usage(session, posixpath.dirname(item.remote))
            full = " (the remote disk is full)" if free < (item.size - start) else ""
            raise RemoteError(f"{session.host.label}: {step}: writing {part} failed{full}: {exc}; "
                              "run the command again to resume") from None
        arrived = sftp.stat(part).st_size or 0  # pipelined writes report a full disk late or not at all
        if arrived != item.size:
            free, _ = disk_usage(session, posixpath.dirname(item.remote))
            full = "the remote disk is full" if free < item.size - arrived + (1 << 20) else "the copy stopped short"
            raise RemoteError(f"{session.host.label}: {step}: {posixpath.basename(item.remote)}: {arrived:,} of "
                              f"{item.size:,} bytes arrived ({full}, {free / 1e6:.1f} MB free); what arrived is kept: "
                              "free some space and run the command again to resume")
        got = session.check(f"sha256sum < {shlex.quote(part)}", f"{step}: verify").split()[0]
        if got != item.sha256:
            sftp.remove(part)
            raise RemoteError(f"{session.host.label}: {step}: {item.remote} arrived corrupted (sha256 {got[:12]} "
                              f"!= {item.sha256[:12]}); run the command again")
        sftp.posix_rename(part, item.remote)
    return sent


def code_transfers(settings: RemoteSettings) -> tuple[str, list[Transfer]]:
    """This program's own package files, into a directory named by their combined digest."""
    root = Path(__file__).resolve().parents[1]
    return tree_transfers(root, root.parent, settings.dir("app"), "zelda_tui")


def tree_transfers(root: Path, rel_to: Path, remote_parent: str, prefix: str) -> tuple[str, list[Transfer]]:
    """Every file under `root` (paths relative to `rel_to`) into `remote_parent/<prefix>-<digest>`:
    a new dir per content, so a box never runs a mix of two versions."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    h = hashlib.sha256()
    items = []
    for p in files:
        rel = p.relative_to(rel_to).as_posix()
        digest = sha256_file(p)
        h.update(f"{rel}\0{digest}\n".encode())
        items.append((p, rel, digest))
    remote = posixpath.join(remote_parent, f"{prefix}-{h.hexdigest()[:16]}")
    return remote, [Transfer(p, posixpath.join(remote, rel), d, p.stat().st_size) for p, rel, d in items]


# --- downloads -----------------------------------------------------------------------
def _unsafe_name(name: str) -> bool:
    """A name the box's SFTP server listed that could point outside the dir it was listed in."""
    return name in ("", ".", "..") or any(c in name for c in "/\\\0")


def remote_tree(session: SshSession, root: str) -> list[tuple[str, int]]:
    """(relative path, size) of every file under a remote dir.

    The names come from the box's SFTP server, which a hostile or broken box controls: one
    that could leave the dir (`..`, a `/`, a backslash, NUL) refuses the whole fetch before
    anything is written. Symlinks on the box are not followed (neither file nor dir here).
    """
    sftp = session.sftp
    try:
        sftp.stat(root)
    except FileNotFoundError:
        raise RemoteMissing(session.host.label, root) from None
    out: list[tuple[str, int]] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        for entry in sftp.listdir_attr(posixpath.join(root, rel) if rel else root):
            if _unsafe_name(entry.filename):
                raise RemoteError(f"{session.host.label}: {posixpath.join(root, rel)} lists a file named "
                                  f"{entry.filename!r}, which would land outside the run dir: refusing to fetch "
                                  "anything from it")
            path = posixpath.join(rel, entry.filename) if rel else entry.filename
            if stat.S_ISDIR(entry.st_mode or 0):  # (SFTP attributes may be left out: then neither)
                if not path.endswith(".part"):  # an upload's staging dir: nothing in it is in place yet
                    stack.append(path)
            elif stat.S_ISREG(entry.st_mode or 0) and not path.endswith(".part"):
                out.append((path, entry.st_size or 0))
    return sorted(out)


def download_tree(session: SshSession, root: str, local_root: Path, step: str, progress: Progress,
                  digests_out: dict[str, str] | None = None) -> int:
    """Fetch a remote dir, sha256-verified and resumable; files already here and equal are skipped.
    `digests_out` gets each file's sha256 as the box computed it (relative path -> digest)."""
    return download_files(session, root, remote_tree(session, root), local_root, step, progress, digests_out)


def download_files(session: SshSession, root: str, files: list[tuple[str, int]], local_root: Path, step: str,
                   progress: Progress, digests_out: dict[str, str] | None = None) -> int:
    """Fetch (relative path, size) files of a remote dir (as `remote_tree` lists them) into
    `local_root`: each through a `.part` file, resumed from its size, sha256-verified, renamed into
    place; files already here and equal are skipped. Returns the bytes moved."""
    digests = remote_digests(session, [posixpath.join(root, rel) for rel, _ in files])
    got_bytes = 0
    for n, (rel, size) in enumerate(files, 1):
        remote = posixpath.join(root, rel)
        want = digests.get(remote)
        if want is None:
            raise RemoteError(f"{session.host.label}: {step}: cannot checksum {remote}")
        if digests_out is not None:
            digests_out[rel] = want
        local = local_root / rel
        if not local.resolve().is_relative_to(local_root.resolve()):  # also through a symlink already here
            raise RemoteError(f"{session.host.label}: {step}: {rel!r} would be written outside {local_root}: refusing")
        if local.is_file() and local.stat().st_size == size and sha256_file(local) == want:
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(local.name + ".part")
        start = part.stat().st_size if part.exists() else 0
        if start > size:
            start = 0
        progress(f"{step}: {rel} ({n}/{len(files)}, {size / 1e6:.1f} MB" + (f", resuming at {start / 1e6:.1f} MB" if start else "") + ")")
        try:
            with open(part, "ab" if start else "wb") as dst:
                if size > start:
                    for chunk in session.read_range(remote, start, size - start):
                        dst.write(chunk)
                        got_bytes += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as exc:  # this machine's disk: full, read-only, gone
            raise ZeldaError(f"{step}: writing {part} here failed: {exc.strerror or exc}; what arrived is kept, "
                             "run the command again to resume") from None
        if sha256_file(part) != want:
            part.unlink()
            raise RemoteError(f"{session.host.label}: {step}: {rel} arrived corrupted (sha256 mismatch); run again")
        os.replace(part, local)
    return got_bytes
