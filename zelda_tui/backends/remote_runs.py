"""Running the trainer on a GPU box over SSH: probe, upload, detached start, stop, fetch.

Layout on the box (DESIGN: same run directory contract as locally):
    <training_dir>/datasets/<mix>/          the mix bundle (shared by runs of that mix)
    <training_dir>/app/zelda_tui-<digest>/  this program's own code, one dir per version
    <training_dir>/models/<run>/            the run dir: run.toml, data/ (hard links), logs...

Uploads and downloads go through `.part` files: resumed from their size after an
interruption, sha256-verified, then renamed into place, so a half-copied file is never
mistaken for a whole one; files whose sha256 already matches are skipped. Small uploaded files
go together as one tar into a `*.part` staging dir, are verified there and then moved in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import shlex
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable

from ..core import evals, runs
from ..core.errors import ZeldaError
from . import box_env
from .generate_runner import GENERATOR_STACK, MODULE as GENERATE_MODULE
from .runners import FIND_MISSING, trainer_command
from .ssh_base import RemoteError, RemoteMissing

if TYPE_CHECKING:  # the session comes from the caller; importing it here would load paramiko at app start
    from .ssh import SshSession

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RemoteSettings:
    training_dir: str = "/opt/training"
    python: str = ""  # an interpreter with the [train] extra; empty: an environment under training_dir/envs
    disk_warning_percent: float = 85.0
    train_requirements: tuple[str, ...] = ()
    trainer_stack: tuple[str, ...] = ()  # the [train] extra alone: what a `python` named in config must have
    nvidia_smi: str = "nvidia-smi"
    python_candidates: tuple[str, ...] = ("python3", "/opt/conda/bin/python")  # the image's pythons, probed in order

    def dir(self, *parts: str) -> str:
        return posixpath.join(self.training_dir, *parts)


@dataclass
class BoxInfo:
    env: box_env.BoxEnv
    free_bytes: int = 0
    used_percent: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def python(self) -> str:
        return self.env.python


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


# --- the box -------------------------------------------------------------------------
def disk_usage(session: SshSession, path: str) -> tuple[int, float]:
    """(free bytes, used percent) of the filesystem holding path (or its nearest existing parent)."""
    probe = f"p={shlex.quote(path)}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; df -Pk \"$p\" | tail -1"
    fields = session.check(probe, "check free disk").split()
    try:
        return int(fields[3]) * 1024, float(fields[4].rstrip("%"))
    except (IndexError, ValueError):
        raise RemoteError(f"{session.host.label}: check free disk: cannot read df output {fields!r}") from None


def gpu_utilisation(session: SshSession, nvidia_smi: str = "nvidia-smi") -> list[float]:
    """Percent busy per GPU; [] when there is no GPU (or no nvidia-smi) to ask."""
    res = session.run(f"{nvidia_smi} --query-gpu=utilization.gpu --format=csv,noheader,nounits", timeout=60)
    if res.rc != 0:
        return []
    out = []
    for line in res.stdout.split():
        try:
            out.append(float(line.strip().rstrip("%")))
        except ValueError:
            continue
    return out


def probe(session: SshSession, settings: RemoteSettings, device: str, need_bytes: int, progress: Progress) -> BoxInfo:
    """A GPU unless the run says cpu, room for the upload, and the trainer's environment (box_env)."""
    label = session.host.label
    progress(f"{label}: checking GPU")
    gpu = box_env.probe_gpus(session, settings.nvidia_smi)
    if not gpu.gpus and device != "cpu":
        raise RemoteError(f"{label}: check GPU: {gpu.error}; refusing to train here "
                          "(set train.device = \"cpu\" to run on CPU anyway)")
    progress(f"{label}: GPU: {gpu.describe()}")
    progress(f"{label}: checking disk")
    session.check(f"mkdir -p {shlex.quote(settings.dir('models'))} {shlex.quote(settings.dir('datasets'))}",
                  f"create {settings.training_dir}")
    free, used = disk_usage(session, settings.training_dir)
    if free < need_bytes:
        raise RemoteError(f"{label}: check free disk: {free / 1e9:.2f} GB free under {settings.training_dir}, "
                          f"the upload needs {need_bytes / 1e9:.2f} GB")
    warnings = []
    if used >= settings.disk_warning_percent:
        warnings.append(f"{label}: disk {used:.0f}% full under {settings.training_dir} "
                        f"(warning at {settings.disk_warning_percent:g}%)")
    progress(f"{label}: checking python")
    env = box_env.ensure(session, settings, device, progress, gpu)
    return BoxInfo(env, free, used, warnings)


def check_stack(session: SshSession, python: str, modules: tuple[str, ...], doing: str) -> None:
    """The box's python has what a program imports (`doing`: what it is for): one line here, not a
    detached program dead at its first import."""
    q = shlex.quote
    res = session.run(f"{q(python)} -c {q(FIND_MISSING)} {' '.join(modules)}", timeout=120)
    missing = res.stdout.split() if res.rc == 0 else [(res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1]]
    if missing:
        raise RemoteError(f"{session.host.label}: {python} cannot {doing} (missing: {', '.join(missing)}); "
                          "train a run there first (it builds the environment) or set [remote] python")


def check_trainer_imports(session: SshSession, python: str, app_dir: str) -> None:
    """Import the uploaded trainer with the box's python before starting it detached: a missing
    module is reported here, not buried in train.log after the start looked fine."""
    q = shlex.quote
    res = session.run(f"PYTHONPATH={q(app_dir)} {q(python)} -c 'import zelda_tui.backends.trainer.program'", timeout=600)
    if res.rc != 0:
        last = (res.stderr.strip().splitlines() or [f"exit {res.rc}"])[-1]
        raise RemoteError(f"{session.host.label}: check python: {python} cannot import the trainer: {last}")


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


def link_data(session: SshSession, bundle_dir: str, run_dir: str, names: list[str]) -> None:
    cmds = [f"mkdir -p {shlex.quote(run_dir + '/' + runs.DATA_DIR)}"]
    for name in names:
        src, dst = shlex.quote(f"{bundle_dir}/{name}"), shlex.quote(f"{run_dir}/{runs.DATA_DIR}/{name}")
        cmds.append(f"(ln -f {src} {dst} 2>/dev/null || cp -f {src} {dst})")
    session.check(" && ".join(cmds), "link the mix into the run dir")


# --- the process ---------------------------------------------------------------------
def start(session: SshSession, run_dir: str, python: str, gpus: int | str, app_dir: str, hf_home: str) -> int:
    """Start the trainer in its own session (setsid + nohup): it outlives this SSH connection.

    The Hugging Face cache goes under the training dir (whose free space was checked) unless the
    box sets HF_HOME itself: a 30 GB base model must not fill a small root disk.
    """
    command = shlex.join(trainer_command(PurePosixPath(run_dir), gpus, python))
    return _detached(session, run_dir, command, f">> {runs.TRAIN_LOG} 2>&1", runs.TRAIN_LOG, app_dir, hf_home,
                     "the trainer")


def start_generate(session: SshSession, run_dir: str, python: str, app_dir: str, hf_home: str, prompt_set: str,
                   checkpoints: list[str], options: list[str]) -> int:
    """Start the eval generator of a run on its box, detached like the trainer: JSON events
    appended to evals/<set>/generate.events (which the mirror brings home), its log to generate.log."""
    edir = f"{evals.EVALS_DIR}/{prompt_set}"
    command = shlex.join([python, "-m", GENERATE_MODULE, run_dir, "--prompt-set", prompt_set,
                          "--checkpoints", ",".join(checkpoints), *options])
    q = shlex.quote
    return _detached(session, run_dir, command,
                     f">> {q(edir + '/' + evals.EVENTS_FILE)} 2>> {q(edir + '/' + evals.GENERATE_LOG)}",
                     f"{edir}/{evals.GENERATE_LOG}", app_dir, hf_home, "the eval generator", mkdir=edir)


def start_export(session: SshSession, run_dir: str, python: str, app_dir: str, hf_home: str, command: list[str],
                 export_dir: str, events: str, log: str) -> int:
    """Start the export program of a run on its box, detached like the trainer: its JSON events
    go to a fresh `events` file (read by whoever follows it), its log is appended to `log`. It may
    end at once (a busy lock, a bad checkpoint): its error event says why."""
    q = shlex.quote
    return _detached(session, run_dir, shlex.join([python, *command[1:]]), f"> {q(events)} 2>> {q(log)}", log,
                     app_dir, hf_home, "the export", mkdir=export_dir, early_exit_ok=True)


def _detached(session: SshSession, run_dir: str, command: str, redirect: str, log: str, app_dir: str, hf_home: str,
              what: str, mkdir: str = "", early_exit_ok: bool = False) -> int:
    q = shlex.quote
    # a simple command backgrounded on its own (not `cd && cmd &`, whose subshell would hold the
    # channel's stdout open and make $! the subshell's pid)
    script = (f"cd {q(run_dir)} || exit 1; " + (f"mkdir -p {q(mkdir)}; " if mkdir else "")
              + f"[ -n \"$HF_HOME\" ] || HF_HOME={q(hf_home)}; export HF_HOME; "
              f"PYTHONPATH={q(app_dir)} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false "
              f"setsid nohup {command} {redirect} < /dev/null & echo $!")
    out = session.check(script, f"start {what}").strip()
    try:
        pid = int(out.splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(f"{session.host.label}: start {what}: no pid in {out!r}") from None
    if early_exit_ok:
        return pid
    res = session.run(f"sleep 1; kill -0 {pid} 2>/dev/null || {{ echo gone; tail -5 {q(run_dir + '/' + log)}; }}")
    if res.stdout.startswith("gone"):
        tail = " | ".join(res.stdout.splitlines()[1:][-3:])
        raise RemoteError(f"{session.host.label}: {what} exited at once: {tail or 'no output'}")
    return pid


def eval_checkpoints(session: SshSession, run_dir: str) -> list[tuple[str, int]]:
    """What an `all` eval covers on the box, by the rule of core.evals.covered_checkpoints."""
    return evals.covered_checkpoints(checkpoint_steps(session, run_dir), read_remote_status(session, run_dir),
                                     has_final_adapters(session, run_dir))


def has_final_adapters(session: SshSession, run_dir: str) -> bool:
    """The run's lora_adapters/ is on the box (written when it ended)."""
    try:
        session.sftp.stat(f"{run_dir}/{runs.ADAPTERS}/adapter_config.json")
        return True
    except FileNotFoundError:
        return False


def checkpoint_steps(session: SshSession, run_dir: str) -> list[int]:
    """Steps of the complete checkpoints on the box, oldest first (the rule of runs.checkpoints:
    a checkpoint-<step> dir holding trainer_state.json)."""
    root = f"{run_dir}/{runs.CHECKPOINTS}"
    try:
        names = session.sftp.listdir(root)
    except FileNotFoundError:
        return []
    steps = []
    for name in names:
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m:
            try:
                session.sftp.stat(f"{root}/{name}/{runs.CHECKPOINT_DONE}")
            except FileNotFoundError:
                continue
            steps.append(int(m.group(1)))
    return sorted(steps)


def alive(session: SshSession, pid: int | None) -> bool:
    if not pid:
        return False
    return session.run(f"kill -0 {int(pid)} 2>/dev/null").rc == 0


def stop(session: SshSession, pid: int) -> None:
    session.check(f"kill -TERM {int(pid)}", f"stop the trainer (pid {pid})")


def read_remote_status(session: SshSession, run_dir: str) -> runs.RunStatus | None:
    try:
        with session.sftp.open(f"{run_dir}/{runs.STATUS}", "rb") as fh:
            return runs.RunStatus.from_json(json.loads(fh.read()))
    except FileNotFoundError:
        return None
    except ValueError:
        return None


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


def rsync_to_backup(session: SshSession, source: str, target: str, rsync_ssh: str = "") -> str:
    """rsync from the GPU box straight to the backup host (the laptop never carries the bytes)."""
    ssh_opt = f"-e {shlex.quote(rsync_ssh)} " if rsync_ssh else ""
    host, _, path = target.partition(":")
    mk = f"mkdir -p {shlex.quote(path)}"
    remote_shell = rsync_ssh or "ssh"
    session.check("command -v rsync >/dev/null || { echo 'rsync is not installed on the box' >&2; exit 127; }",
                  "backup: find rsync")
    session.check(f"{remote_shell} {shlex.quote(host)} {shlex.quote(mk)}", f"backup: create {target}", timeout=120)
    return session.check(f"rsync -a --partial --stats {ssh_opt}{shlex.quote(source.rstrip('/') + '/')} "
                         f"{shlex.quote(target.rstrip('/') + '/')}", f"backup to {target}", timeout=24 * 3600)

