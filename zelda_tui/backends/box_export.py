"""Exporting a remote run's checkpoint on its box, where the base model and the adapters are.

The export program runs there detached (setsid nohup, like the trainer), with the run's own
verified python (box.json), its JSON events in export/<checkpoint>/export.events and its log in
export.log beside what it writes. This side follows the events over SSH, reconnecting when the
link drops (the box goes on meanwhile; a later export of the same checkpoint follows the running
one instead of starting a second), then brings home only what was asked: the merged model
and/or the GGUF files of the types asked, and export.json.

For GGUF the box needs llama.cpp's converter, uploaded from here (sha256-skipped) when this
machine has it, else unpacked there from the pinned llama-cpp-python sdist; and llama-cpp-python
itself in the run's python, installed into the run's environment when it lacks it (a compile,
once per environment).
"""

from __future__ import annotations

import json
import posixpath
import shlex
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable

from ..core import atomic, jsonl
from ..core.errors import ZeldaError
from ..core.format import human_bytes
from . import export_runner as layout
from . import box_files, remote_runs
from .runners import FIND_MISSING
from .ssh_base import RemoteError

if TYPE_CHECKING:
    from .hosts import SshHost
    from .ssh import SshSession

Progress = Callable[[str], None]
RECONNECT_FOR_S = 900.0  # a box reboot takes minutes; the export goes on there meanwhile
POLL_S = 0.5
GONE_GRACE_S = 3.0  # the program ended: its last events may still be on their way
DISK_MARGIN = 1.02


@dataclass(frozen=True)
class BoxJob:
    """An export program on the box: its pid, and whether it was already running (attached to)."""

    pid: int
    attached: bool


class BoxExport:
    """The export of one remote run's checkpoints, on its box."""

    def __init__(self, host: SshHost, run_dir: Path) -> None:
        self.host, self.run_dir = host, Path(run_dir)

    @property
    def remote_dir(self) -> str:
        return self.host._dir()

    def remote_export_dir(self, checkpoint: str) -> str:
        return posixpath.join(self.remote_dir, layout.EXPORT_DIR, checkpoint)

    def adapters(self) -> tuple[list[int], bool]:
        """(steps of the complete checkpoints, whether final adapters exist) on the box."""
        with self.host._session() as session:
            return (remote_runs.checkpoint_steps(session, self.remote_dir),
                    remote_runs.has_final_adapters(session, self.remote_dir))

    # --- start ------------------------------------------------------------------------
    def start(self, request: layout.ExportRequest, progress: Progress) -> BoxJob:
        """Follow the export of this checkpoint already running on the box, or start one: upload
        the code (and the converter for GGUF), check the run's python can export, start it detached."""
        settings = self.host.settings
        with self.host._session() as session:
            running = running_export(session, str(layout.lock_path(PurePosixPath(self.remote_dir), request.checkpoint)))
            if running:
                progress(f"{self.host.name}: an export of {request.checkpoint} is already running there "
                         f"(pid {running}): following it")
                return BoxJob(running, True)
            python = self.host.run_python(session, self.run_dir, progress)
            app_dir, code_files = box_files.code_transfers(settings)
            box_files.upload(session, code_files, "upload the export code", progress)
            remote_runs.check_stack(session, python, layout.EXPORT_STACK, "export a merged model")
            llama_cpp = self._gguf_tools(session, python, progress) if request.gguf else None
            there = replace(request, run_dir=PurePosixPath(self.remote_dir), llama_cpp=llama_cpp)
            progress(f"{session.host.label}: starting the export of {request.checkpoint} in {self.remote_dir}")
            rel = posixpath.join(layout.EXPORT_DIR, request.checkpoint)
            pid = remote_runs.start_export(session, self.remote_dir, python, app_dir, settings.dir("hf"),
                                           there.command(python), rel, posixpath.join(rel, layout.EVENTS),
                                           posixpath.join(rel, layout.LOG))
        return BoxJob(pid, False)

    def _gguf_tools(self, session: SshSession, python: str, progress: Progress) -> PurePosixPath:
        """llama.cpp's converter on the box, and llama-cpp-python in the run's python."""
        settings, label = self.host.settings, session.host.label
        q = shlex.quote
        local = layout.find_llama_cpp()
        if local is not None:
            remote, files = box_files.tree_transfers(local, local, settings.dir("tools"), "llama.cpp")
            box_files.upload(session, files, "upload llama.cpp's converter", progress)
        else:  # the sdist's vendored converter, unpacked there once
            remote = settings.dir("tools", f"llama.cpp-{layout.LLAMA_CPP_PYTHON}")
            progress(f"{label}: fetching llama.cpp's converter (llama-cpp-python {layout.LLAMA_CPP_PYTHON} sdist)")
            sdist = f"llama_cpp_python-{layout.LLAMA_CPP_PYTHON}"
            dl = settings.dir("tools", "dl")
            session.check(
                f"test -f {q(remote + '/' + layout.CONVERTER)} || {{ mkdir -p {q(dl)} {q(remote + '.part')} && "
                f"{q(python)} -m pip download -q --no-deps --no-binary :all: -d {q(dl)} "
                f"llama-cpp-python=={layout.LLAMA_CPP_PYTHON} && tar xzf {q(dl + '/' + sdist + '.tar.gz')} "
                f"-C {q(remote + '.part')} --strip-components=3 {sdist}/vendor/llama.cpp/{layout.CONVERTER} "
                f"{sdist}/vendor/llama.cpp/conversion {sdist}/vendor/llama.cpp/gguf-py && "
                f"rm -rf {q(remote)} && mv {q(remote + '.part')} {q(remote)}; }}",
                "fetch llama.cpp's converter", timeout=1800)
        res = session.run(f"{q(python)} -c {q(FIND_MISSING)} llama_cpp", timeout=120)
        if res.rc == 0 and res.stdout.split():
            if not python.startswith(settings.dir("envs") + "/"):  # not an environment of ours: not ours to change
                raise RemoteError(f"{label}: {python} has no llama-cpp-python (each GGUF is checked by running it): "
                                  f"pip install llama-cpp-python=={layout.LLAMA_CPP_PYTHON} there, or export without "
                                  "--gguf")
            progress(f"{label}: installing llama-cpp-python {layout.LLAMA_CPP_PYTHON} into {python} "
                     "(compiles llama.cpp: minutes, once per environment)")
            session.check(f"CMAKE_ARGS={q(layout.LLAMA_CPP_CMAKE_ARGS)} {q(python)} -m pip install -q "
                          f"llama-cpp-python=={layout.LLAMA_CPP_PYTHON}", "install llama-cpp-python", timeout=3600)
        return PurePosixPath(remote)

    # --- follow -----------------------------------------------------------------------
    def follow(self, checkpoint: str, job: BoxJob, on_event: Callable[[dict], None], progress: Progress,
               cancel: Callable[[], bool]) -> bool:
        """Read the job's events until its last one ("done" or "error"); True when it got there,
        False when cancelled (the box goes on). A dropped link reconnects for up to RECONNECT_FOR_S;
        a program that ended without its last event is one line with its log's tail."""
        edir = self.remote_export_dir(checkpoint)
        events, log = posixpath.join(edir, layout.EVENTS), posixpath.join(edir, layout.LOG)
        q = shlex.quote
        offset, pending = 0, b""
        session: SshSession | None = None
        lost_since: float | None = None
        gone_since: float | None = None
        try:
            while not cancel():
                try:
                    if session is None:
                        session = self.host.connect()
                        if lost_since is not None:
                            progress(f"{self.host.name}: reconnected; the export went on")
                        lost_since = None
                    out = session.check(f"stat -c %s {q(events)} 2>/dev/null || echo 0; "
                                        f"kill -0 {job.pid} 2>/dev/null && echo alive || true", "follow the export")
                    lines = out.split()
                    size, alive = int(lines[0]) if lines and lines[0].isdigit() else 0, "alive" in lines
                    if size < offset:  # started afresh (another start raced ours): read the new one's
                        offset, pending = 0, b""
                    if size > offset:
                        pending += b"".join(session.read_range(events, offset, size - offset))
                        offset = size
                        *whole, pending = pending.split(b"\n")
                        for raw in whole:
                            event = jsonl.event(raw)
                            if event is None:
                                continue
                            on_event(event)
                            if event.get("event") in ("done", "error"):
                                return True
                    if alive:
                        gone_since = None
                    else:
                        gone_since = gone_since or time.monotonic()
                        if time.monotonic() - gone_since > GONE_GRACE_S:
                            tail = session.run(f"tail -3 {q(log)}").stdout.strip().splitlines()
                            raise ZeldaError(f"the export on {self.host.name} (pid {job.pid}) ended without finishing: "
                                             f"{' | '.join(tail) or 'no output'} (see {log} there)")
                except RemoteError as exc:
                    if session is not None:
                        session.close()
                        session = None
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > RECONNECT_FOR_S:
                        raise RemoteError(f"{exc}; gave up reconnecting after {RECONNECT_FOR_S / 60:.0f} min: the "
                                          "export goes on on the box, `zelda-tui export` again follows it") from None
                    progress(f"{self.host.name}: connection lost ({exc}); reconnecting")
                    time.sleep(min(5.0, 1.0 + (time.monotonic() - lost_since) / 10))
                    continue
                time.sleep(POLL_S)
            return False
        finally:
            if session is not None:
                session.close()

    # --- bring home -------------------------------------------------------------------
    def bring_home(self, checkpoint: str, merged: bool, types: list[str], progress: Progress) -> list[str]:
        """Copy the asked parts of the box's export here (sha256-verified, resumable): the merged
        dir (assembled under a temporary name, renamed into place when whole), the GGUF files of
        `types`, then export.json. Refuses with the sizes when this disk cannot hold them."""
        edir = self.remote_export_dir(checkpoint)
        local = layout.export_dir(self.run_dir, checkpoint)
        with self.host._session() as session:
            listing = box_files.remote_tree(session, edir)
            with session.sftp.open(posixpath.join(edir, layout.RECORD), "rb") as fh:
                record = json.loads(fh.read())
            names = {(record.get("gguf") or {}).get(t, {}).get("file") for t in types} - {None}
            want_merged = [(rel, n) for rel, n in listing if merged and rel.startswith(layout.MERGED + "/")]
            want_gguf = [(rel, n) for rel, n in listing if rel.startswith(layout.GGUF + "/")
                         and posixpath.basename(rel) in names]
            missing = [t for t in types if (record.get("gguf") or {}).get(t, {}).get("file") not in
                       {posixpath.basename(r) for r, _ in want_gguf}]
            if missing:
                raise ZeldaError(f"the export on {self.host.name} has no GGUF {missing[0]} file (see {edir}/"
                                 f"{layout.LOG} there)")
            _check_room(local, want_merged + want_gguf, self.host.name, edir)
            brought: list[str] = []
            if want_merged:
                staging = local / f".{layout.MERGED}.download"
                final = local / layout.MERGED
                if final.is_dir() and not staging.exists():
                    final.rename(staging)  # equal files are skipped, not copied again
                rels = [(rel[len(layout.MERGED) + 1:], n) for rel, n in want_merged]
                box_files.download_files(session, posixpath.join(edir, layout.MERGED), rels, staging,
                                         f"bring home {layout.MERGED}", progress)
                keep = {rel for rel, _ in rels}
                for extra in [p for p in staging.rglob("*") if p.is_file() and p.relative_to(staging).as_posix() not in keep]:
                    extra.unlink()  # an older merge's shard this one does not have (ours: we brought it)
                if final.exists():
                    shutil.rmtree(final)  # ours: an earlier bring-home
                staging.rename(final)
                brought.append(layout.MERGED)
            if want_gguf:
                box_files.download_files(session, edir, want_gguf, local, "bring home GGUF", progress)
                brought += [rel for rel, _ in want_gguf]
            extras = [(rel, n) for rel, n in listing if rel in (layout.LOG, layout.RECORD)]
            box_files.download_files(session, edir, sorted(extras, key=lambda e: e[0] == layout.RECORD), local,
                                     "bring home export.json", progress)  # the record last: it names the rest
        return brought


def running_export(session: SshSession, lock_file: str) -> int | None:
    """The pid of the export program holding a checkpoint's export lock on the box, if one runs."""
    lock = shlex.quote(lock_file)
    res = session.run(f"pid=$(head -n 1 {lock} 2>/dev/null) && [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null && "
                      f"grep -qa {shlex.quote(layout.MODULE)} /proc/\"$pid\"/cmdline && echo \"$pid\" || true")
    out = res.stdout.strip()
    return int(out) if out.isdigit() else None


def _check_room(local: Path, files: list[tuple[str, int]], host: str, edir: str) -> None:
    """Room here for what is not here yet (a file of the same size is taken as here: its sha256 is
    checked when it is reached)."""
    def here(rel: str, size: int) -> bool:
        for path in (local / rel, local / f".{layout.MERGED}.download" / rel.removeprefix(layout.MERGED + "/")):
            if path.is_file() and path.stat().st_size == size:
                return True
        return False

    need = int(sum(n for rel, n in files if not here(rel, n)) * DISK_MARGIN)
    free, probe = atomic.free_space(local)
    if need > free:
        raise ZeldaError(f"not enough disk here to bring the export home: it needs {human_bytes(need)}, "
                         f"{human_bytes(free)} free under {probe}; it stays on {host} in {edir} (free some space and "
                         "export again: nothing is redone)")
