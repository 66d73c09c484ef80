"""Mirror a remote run directory's logs into the local run dir, surviving dropped connections.

train.log and metrics.jsonl are append-only, so the local copy's size *is* the byte offset
to resume from: after a dropped connection, an sshd restart, a reboot or a restart of this
program, reading resumes exactly where the local file ends, so no line is lost or repeated.
Only complete lines are appended (a partial last line stays on the remote side until its
newline arrives). status.json is replaced atomically on the box, and copied whenever it
changes. Every local reader (tail, Runs screen, run_info) then reads the local files.

A run dir that vanishes while connected (deleted, the box re-imaged behind the same address, its
disk unmounted) ends the follow as it does at connect time (RemoteRunGone), not as "nothing new"
forever: the dir missing, or status.json (which the trainer always writes, replacing it by rename,
so it is never missing in between) missing once seen, on every pass for GONE_AFTER_S.
"""

from __future__ import annotations

import errno
import json
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import paramiko

from ..core import atomic, eval_worker, evals, locks, runs
from ..core.errors import ZeldaError
from .ssh import HostKeyChanged, RemoteError, SshSession, UnknownHostKey

APPEND_ONLY = (runs.TRAIN_LOG, runs.METRICS)
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BULK_BYTES = 1 << 20
DIR_CHECK_S = 1.0  # while status.json is missing, how often the run dir itself is looked at
EVALS_EVERY_S = 1.0  # how often the box's evals/ is listed (the logs are polled every poll_s)
LOCK_FILE = ".mirror.lock"
READ_TIMEOUT_S = 15.0  # a silently dead link (no FIN/RST) is noticed after this long
GONE_AFTER_S = 2.0  # missing this long on every pass, not a file caught mid-replace: the run dir is gone

LinesCallback = Callable[[str, list[str]], None]


@dataclass(frozen=True)
class LinkState:
    """What the user sees of the connection: connecting / connected / reconnecting / stopped / failed."""

    state: str
    host: str
    attempt: int = 0
    retry_in_s: float | None = None
    error: str = ""
    gone: bool = False  # failed because the run dir is not on the box (RemoteRunGone): the run cannot go on there

    def line(self) -> str:
        if self.state == "reconnecting":
            return f"{self.host}: reconnecting, try {self.attempt} in {self.retry_in_s:g} s ({self.error})"
        if self.state in ("failed", "shared"):
            return f"{self.host}: {self.error}"
        return f"{self.host}: {self.state}"


class RemoteRunGone(ZeldaError):
    """The remote run directory is not there (deleted, or the wrong box): retrying will not help."""


class RemoteMirror:
    def __init__(self, connect: Callable[[], SshSession], remote_dir: str, local_dir: Path,
                 on_lines: LinesCallback | None = None, on_state: Callable[[LinkState], None] | None = None,
                 poll_s: float = 0.1, on_tick: Callable[[SshSession], None] | None = None, tick_s: float = 60.0,
                 host: str = "remote") -> None:
        self.connect, self.remote_dir, self.local_dir = connect, remote_dir.rstrip("/"), Path(local_dir)
        self.on_lines, self.on_state, self.poll_s = on_lines, on_state, poll_s
        self.on_tick, self.tick_s = on_tick, tick_s  # periodic checks on the box while following (GPU idle, disk)
        self.session: SshSession | None = None
        self._lock = locks.FileLock(self.local_dir / LOCK_FILE)  # held across the mirror's life, once taken
        self.host = host  # the alias until a connection names it in full
        self.alias = host  # as the run's .remote marker names its box
        self._status_sig: tuple[int, int] | None = None
        self._status_seen = False  # status.json was there on this box: its going missing means the dir went
        self._missing_since: float | None = None  # since when every pass found the run dir (or status.json) gone
        self._dir_check_due = 0.0
        self._evals_due = 0.0
        self._copied: dict[str, tuple[int, int]] = {}  # evals/<set>/<file> -> (mtime, size) last copied
        self.state = LinkState("idle", self.host)

    # --- one pass ------------------------------------------------------------------------
    def sync_once(self) -> int:
        """Copy whatever is new; returns the number of new complete lines. Raises on link trouble.

        When another follower (the TUI, a `tail` in another terminal) is mirroring this run, it
        copies nothing: that one keeps the local files current, and two writers would duplicate lines.
        """
        held_before = self._lock.held
        if not self.take_lock():
            return 0
        try:
            sftp = self._sftp()
            new = 0
            for name in APPEND_ONLY:
                new += self._sync_append_only(sftp, name)
            self._check_there(sftp, self._sync_status(sftp))
            if time.monotonic() >= self._evals_due:
                self._evals_due = time.monotonic() + EVALS_EVERY_S
                new += self._sync_evals(sftp)
            return new
        finally:
            if not held_before:
                self.release_lock()

    def take_lock(self) -> bool:
        """One mirror per local run dir, across processes (runs/<run>/.mirror.lock); True when ours already."""
        return self._lock.try_acquire()

    def release_lock(self) -> None:
        self._lock.release()

    def _sftp(self) -> paramiko.SFTPClient:
        if self.session is not None and not self.session.is_alive():
            self._drop_session()  # noticed between two reads: the same as a read failing, so the state says so
            raise RemoteError(f"{self.host}: connection lost")
        if self.session is None:
            self.session = self.connect()
            self.host = self.session.host.label
            channel = self.session.sftp.get_channel()
            if channel is not None:
                channel.settimeout(READ_TIMEOUT_S)
            if not self._dir_there(self.session.sftp):
                raise self._gone(f"remote run dir {self.remote_dir} is gone (deleted?)")
        return self.session.sftp

    def _dir_there(self, sftp: paramiko.SFTPClient) -> bool:
        try:
            if not stat.S_ISDIR(sftp.stat(self.remote_dir).st_mode or 0):
                raise RemoteRunGone(f"{self.host}: {self.remote_dir} is not a directory")
        except FileNotFoundError:
            return False
        return True

    def _gone(self, what: str) -> RemoteRunGone:
        return RemoteRunGone(f"{self.host}: {what}; what was copied so far is kept in {self.local_dir}")

    def _check_there(self, sftp: paramiko.SFTPClient, status_there: bool) -> None:
        """Raise RemoteRunGone once the run dir (or status.json, seen here before) has been missing on
        every pass for GONE_AFTER_S; the dir is looked at only while status.json is missing."""
        now = time.monotonic()
        if status_there:
            self._missing_since = None
            return
        if now < self._dir_check_due:
            return
        self._dir_check_due = now + DIR_CHECK_S
        dir_there = self._dir_there(sftp)
        if dir_there and not self._status_seen:
            self._missing_since = None  # not written yet (the trainer starts), or a dir without a trainer
            return
        if self._missing_since is None:
            self._missing_since = now
        elif now - self._missing_since >= GONE_AFTER_S:
            raise self._gone(f"remote run dir {self.remote_dir} is gone (deleted?)" if not dir_there else
                             f"{self.remote_dir}/{runs.STATUS} is gone (the run dir emptied, or its disk unmounted?)")

    def _sync_append_only(self, sftp: paramiko.SFTPClient, name: str, upto: int | None = None) -> int:
        local = self.local_dir / name
        offset = local.stat().st_size if local.exists() else 0
        remote = f"{self.remote_dir}/{name}"
        try:
            size = sftp.stat(remote).st_size or 0
        except FileNotFoundError:
            return 0
        if upto is not None:
            size = min(size, upto)
        if size < offset:
            raise RemoteRunGone(f"{self.host}: {remote} is shorter ({size} B) than the copy here ({offset} B): "
                                "the remote run dir was replaced; not mixing two runs' logs")
        if size == offset:
            return 0
        count = 0
        held = b""
        with open(local, "ab") as out:
            for data in self._read(sftp, remote, offset, size - offset):
                buf = held + data
                cut = buf.rfind(b"\n") + 1
                held = buf[cut:]
                if cut:
                    out.write(buf[:cut])
                    out.flush()
                    lines = buf[: cut - 1].decode("utf-8", "replace").split("\n")
                    count += len(lines)
                    if self.on_lines:
                        self.on_lines(name, lines)
        return count

    def _read(self, sftp: paramiko.SFTPClient, path: str, offset: int, length: int) -> Iterator[bytes]:
        """A few new lines: one SFTP read (~1 ms). A backlog: an exec stream (an exec costs ~0.2 s
        to start, SFTP reads crawl at ~5 MB/s)."""
        if length > BULK_BYTES:
            assert self.session is not None  # _sftp() connected it
            yield from self.session.read_range(path, offset, length, READ_TIMEOUT_S)
            return
        with sftp.open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        if len(data) != length:
            raise RemoteError(f"{self.host}: {path} gave {len(data)} of {length} bytes")
        yield data

    def _sync_status(self, sftp: paramiko.SFTPClient) -> bool:
        """Copy status.json when it changed; False when it is not on the box."""
        remote = f"{self.remote_dir}/{runs.STATUS}"
        try:
            st = sftp.stat(remote)
        except FileNotFoundError:
            return False
        self._status_seen = True
        sig = (int(st.st_mtime or 0), int(st.st_size or 0))
        if sig == self._status_sig and (self.local_dir / runs.STATUS).exists():
            return True
        try:
            with sftp.open(remote, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return True  # replaced between the stat and the open (non-atomic writer): next pass
        try:
            json.loads(data)
        except ValueError:
            return True  # caught mid-replace on a filesystem without atomic rename: next pass
        atomic.write_bytes(self.local_dir / runs.STATUS, data)
        self._status_sig = sig
        return True

    def _sync_evals(self, sftp: paramiko.SFTPClient) -> int:
        """The box's evals (a generator running there): events and log appended like the run's
        logs; answers files and worker.json copied whole when they change (the generator
        replaces them atomically, so a file that is there is complete)."""
        root = f"{self.remote_dir}/{evals.EVALS_DIR}"
        try:
            sets = [a.filename for a in sftp.listdir_attr(root) if stat.S_ISDIR(a.st_mode or 0)]
        except FileNotFoundError:
            return 0
        new = 0
        for name in sets:
            rel_dir = f"{evals.EVALS_DIR}/{name}"
            (self.local_dir / rel_dir).mkdir(parents=True, exist_ok=True)
            sizes = {}  # the events as they are before the listing: each one's answers are in it
            for log_name in (evals.EVENTS_FILE, evals.GENERATE_LOG):
                try:
                    sizes[log_name] = sftp.stat(f"{root}/{name}/{log_name}").st_size or 0
                except FileNotFoundError:
                    sizes[log_name] = 0
            for attr in sftp.listdir_attr(f"{root}/{name}"):
                fname = attr.filename
                if fname != eval_worker.WORKER_FILE and (not fname.endswith(".jsonl") or fname == evals.PROMPTS_FILE):
                    continue
                rel = f"{rel_dir}/{fname}"
                sig = (int(attr.st_mtime or 0), int(attr.st_size or 0))
                if self._copied.get(rel) == sig and (self.local_dir / rel).exists():
                    continue
                try:
                    with sftp.open(f"{self.remote_dir}/{rel}", "rb") as fh:
                        data = fh.read()
                except FileNotFoundError:
                    continue  # replaced between the listing and the read: the next pass has it
                atomic.write_bytes(self.local_dir / rel, data)
                self._copied[rel] = sig
            # after the answers: an event here ("done") means its answers file is here too
            for log_name in (evals.EVENTS_FILE, evals.GENERATE_LOG):
                new += self._sync_append_only(sftp, f"{rel_dir}/{log_name}", sizes[log_name])
        return new

    # --- following -----------------------------------------------------------------------
    def follow(self, stop: threading.Event, until_inactive: bool = True) -> LinkState:
        """Sync every poll_s until stopped (or, by default, until the run is no longer active).

        Link trouble → reconnect with backoff, forever (a reboot takes minutes); a host-key
        problem or a vanished run dir ends the follow with state "failed".
        """
        attempt = 0
        next_tick = 0.0
        while not self.take_lock():  # someone else mirrors this run: their copy is ours to read
            if self.state.state != "shared":
                self._set(LinkState("shared", self.host, error="another zelda-tui is following this run"))
            if stop.wait(1.0) or (until_inactive and not self._active()):
                self._set(LinkState("stopped", self.host))
                return self.state
        while not stop.is_set():
            try:
                if self.state.state != "connected":
                    if until_inactive and self._moved():  # recovered elsewhere meanwhile: not this box's run now
                        self._set(LinkState("stopped", self.host))
                        break
                    self._set(LinkState("connecting", self.host, attempt))
                    self._sftp()
                    attempt = 0
                    self._set(LinkState("connected", self.host))
                new = self.sync_once()
                if self.on_tick and self.session is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_s
                    self.on_tick(self.session)
                if until_inactive and not new and not self._active():
                    self.sync_once()  # lines written just before the state changed
                    self._set(LinkState("stopped", self.host))
                    break
            except (RemoteRunGone, UnknownHostKey, HostKeyChanged) as exc:
                self._set(LinkState("failed", self.host, attempt, error=str(exc), gone=isinstance(exc, RemoteRunGone)))
                self.close()
                return self.state
            except (RemoteError, OSError, EOFError, paramiko.SSHException) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.EACCES,):
                    self._set(LinkState("failed", self.host, attempt, error=f"permission denied: {exc}"))
                    self.close()
                    return self.state
                self._drop_session()  # the mirror lock stays ours while we reconnect
                attempt += 1
                delay = BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)]
                self._set(LinkState("reconnecting", self.host, attempt, delay, _brief(exc, self.host)))
                stop.wait(delay)
                continue
            stop.wait(self.poll_s)
        self.close()
        if self.state.state not in ("stopped", "failed"):
            self._set(LinkState("stopped", self.host))
        return self.state

    def _moved(self) -> bool:
        """The run went on on another box (`train recover`, [recovery] auto): its marker names another."""
        marker = runs.read_remote_marker(self.local_dir)
        return marker is not None and (marker["host"], marker["remote_dir"].rstrip("/")) != (self.alias, self.remote_dir)

    def _active(self) -> bool:
        """The run trains, or the box still evaluates its checkpoints (as last copied here)."""
        status = runs.read_status(self.local_dir)
        if status is None or runs.RunState.of(status.state).is_live:
            return True
        return any(w.working for w in eval_worker.workers(self.local_dir).values())

    def _set(self, state: LinkState) -> None:
        self.state = state
        if self.on_state:
            self.on_state(state)

    def _drop_session(self) -> None:
        self._missing_since = None  # "gone on every pass" counts within one connection (the next checks at connect)
        if self.session is not None:
            self.session.close()
            self.session = None

    def close(self) -> None:
        self._drop_session()
        self.release_lock()


def _brief(exc: BaseException, host: str) -> str:
    """The cause in a few words: without the host (the state line names it), cut to fit one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    alias = host.split(" ")[0]
    if text.startswith(alias):
        text = re.sub(r"^\S+( \([^)]*\))?: ", "", text, count=1)  # "gpu-box (1.2.3.4:22): why" → "why"
    if ": " in text and text.split(": ", 1)[0].startswith(("cannot connect", "connection lost")):
        text = text.split(": ", 1)[1]  # "cannot connect: [Errno 111] Connection refused" → the reason
    return text if len(text) < 60 else text[:59] + "…"
