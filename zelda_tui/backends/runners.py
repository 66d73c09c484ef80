"""Starting and stopping the trainer program on this machine, detached from the caller.

The trainer runs in its own session (it outlives the TUI or the shell that started it) with
stdout+stderr appended to RUN_DIR/train.log; stopping sends SIGTERM, which the trainer turns
into "checkpoint, then exit 0".
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path, PurePath

from ..core import runs
from ..core.errors import ZeldaError

TRAINER_MODULE = "zelda_tui.backends.trainer"


def trainer_command(run_dir: PurePath, gpus: int | str, python: str | None = None) -> list[str]:
    """One process for one GPU; torchrun (DDP, one 4-bit copy per GPU) for N or "all"."""
    python = python or sys.executable
    program = ["-m", TRAINER_MODULE, str(run_dir)]
    if gpus in (1, "1"):
        return [python, *program]
    if isinstance(gpus, str) and gpus != "all" and not gpus.isdigit():
        raise ZeldaError(f"train.gpus must be a number or \"all\", got {gpus!r}")
    nproc = "gpu" if gpus == "all" else str(int(gpus))
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *program]


TRAINER_STACK = ("torch", "transformers", "peft", "trl")
FIND_MISSING = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"


def check_trainer_stack(python: str | None = None) -> None:
    """The python that will run the trainer has its stack, checked before a start is reported: a
    missing module is one line here, not a 'started' followed by a ModuleNotFoundError in train.log.
    (find_spec, not import: the check stays well under a second where importing takes several.)"""
    python = python or sys.executable
    try:
        res = subprocess.run([python, "-c", FIND_MISSING, *TRAINER_STACK], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZeldaError(f"cannot run {python} to check the trainer stack: {exc}") from None
    missing = res.stdout.split() if res.returncode == 0 else ["?"]
    if missing:
        what = ", ".join(missing) if missing != ["?"] else (res.stderr.strip().splitlines() or ["?"])[-1]
        raise ZeldaError(f"{python} cannot import the trainer stack (missing: {what}): "
                         "install it with pip install -e '.[train]'")


def start_local(run_dir: Path, gpus: int | str = 1, python: str | None = None) -> int:
    run_dir = Path(run_dir)
    runs.require_transition(run_dir, runs.RunState.STARTING)  # before a process exists
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = trainer_command(run_dir, gpus, python)
    with open(run_dir / runs.TRAIN_LOG, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=run_dir, env=env, start_new_session=True,
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()  # no zombie in a long-lived app
    runs.set_state(run_dir, runs.RunState.STARTING, pid=proc.pid)
    return proc.pid


def stop_local(run_dir: Path) -> int:
    """SIGTERM to this run's trainer, once the run dir and the process both say it is ours."""
    run_dir = Path(run_dir)
    status = runs.read_status(run_dir)
    if status is None or not runs.RunState.of(status.state).is_live:
        raise ZeldaError(f"{run_dir}: not running (state {status.state if status else 'unknown'})")
    marker = runs.read_remote_marker(run_dir)
    if marker is not None:
        raise ZeldaError(f"{run_dir.name} runs on {marker['host']} ({marker['remote_dir']}), not here: "
                         f"not signalling local pid {status.pid}")
    if status.host != socket.gethostname():
        raise ZeldaError(f"{run_dir.name} was started on {status.host!r}, not on this machine "
                         f"({socket.gethostname()!r}): not signalling local pid {status.pid}")
    if status.pid is None or not runs.pid_alive(status.pid):
        raise ZeldaError(f"{run_dir}: process {status.pid} is gone (state says {status.state})")
    if not is_trainer_of(status.pid, run_dir):
        raise ZeldaError(f"{run_dir.name}: pid {status.pid} is another program now (not the trainer of this run "
                         "dir): not signalling it")
    os.kill(status.pid, signal.SIGTERM)
    return status.pid


def is_trainer_of(pid: int, run_dir: Path) -> bool:
    """Whether the process' command line is the trainer module with this run dir (pids get reused)."""
    try:
        args = Path(f"/proc/{int(pid)}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc here (not Linux): the host check above is all we have
    except OSError:
        return False
    target = os.path.realpath(run_dir)
    return TRAINER_MODULE in args and any(os.path.realpath(a) == target for a in args if a)
