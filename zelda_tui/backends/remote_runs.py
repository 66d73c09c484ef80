"""Running the trainer on a GPU box over SSH: probe, detached start, stop, backup.

Layout on the box (DESIGN: same run directory contract as locally):
    <training_dir>/datasets/<mix>/          the mix bundle (shared by runs of that mix)
    <training_dir>/app/zelda_tui-<digest>/  this program's own code, one dir per version
    <training_dir>/models/<run>/            the run dir: run.toml, data/ (hard links), logs...

Moving files to and from the box (uploads, fetches, their .part and sha256 contract) is box_files.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Callable

from ..core import evals, runs
from . import box_env, box_files
from .generate_runner import MODULE as GENERATE_MODULE
from .runners import FIND_MISSING, trainer_command
from .ssh_base import RemoteError

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


# --- the box -------------------------------------------------------------------------
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
    free, used = box_files.disk_usage(session, settings.training_dir)
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

