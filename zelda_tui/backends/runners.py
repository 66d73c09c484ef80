"""Starting and stopping the trainer program on this machine, detached from the caller.

The trainer runs in its own session (it outlives the TUI or the shell that started it) with
stdout+stderr appended to RUN_DIR/train.log; stopping sends SIGTERM, which the trainer turns
into "checkpoint, then exit 0".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ..core import runs
from ..core.errors import ZeldaError


def trainer_command(run_dir: Path, gpus: int | str, python: str | None = None) -> list[str]:
    """One process for one GPU; torchrun (DDP, one 4-bit copy per GPU) for N or "all"."""
    python = python or sys.executable
    program = ["-m", "zelda_tui.backends.trainer", str(run_dir)]
    if gpus in (1, "1"):
        return [python, *program]
    if isinstance(gpus, str) and gpus != "all" and not gpus.isdigit():
        raise ZeldaError(f"train.gpus must be a number or \"all\", got {gpus!r}")
    nproc = "gpu" if gpus == "all" else str(int(gpus))
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *program]


def start_local(run_dir: Path, gpus: int | str = 1, python: str | None = None) -> int:
    run_dir = Path(run_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = trainer_command(run_dir, gpus, python)
    with open(run_dir / runs.TRAIN_LOG, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=run_dir, env=env, start_new_session=True,
        )
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()  # no zombie in a long-lived app
    status = runs.read_status(run_dir) or runs.RunStatus()
    status.state, status.pid = "starting", proc.pid
    runs.write_status(run_dir, status)
    return proc.pid


def stop_local(run_dir: Path) -> int:
    status = runs.read_status(run_dir)
    if status is None or status.state not in runs.ACTIVE_STATES:
        raise ZeldaError(f"{run_dir}: not running (state {status.state if status else 'unknown'})")
    if not runs.pid_alive(status.pid):
        raise ZeldaError(f"{run_dir}: process {status.pid} is gone (state says {status.state})")
    os.kill(status.pid, signal.SIGTERM)
    return status.pid
