"""`train start` / `train resume` on this machine: what they say before and after starting the trainer."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.conftest import run_cli
from zelda_tui.cli import main
from zelda_tui.core import runs

BARE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")  # the interpreter without this venv's packages


def test_start_without_the_trainer_stack_says_so_before_starting(small_ws: Path, monkeypatch, capsys):
    """The trainer runs in the python running zelda-tui (sys.executable): here one without torch."""
    monkeypatch.setattr(sys, "executable", BARE_PYTHON)
    code = main(["--config", str(small_ws), "train", "start"])
    out, err = capsys.readouterr()
    assert code == 1 and "started" not in out
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"zelda-tui: error: {BARE_PYTHON} cannot import the trainer stack (missing: torch, ")
    assert "pip install -e '.[train]'" in last
    assert not (small_ws.parent / "runs").exists() or not any((small_ws.parent / "runs").iterdir())


def wait_done(run_dir: Path, timeout: float = 120) -> runs.RunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = runs.read_status(run_dir)
        if status and not runs.RunState.of(status.state).is_live and not runs.pid_alive(status.pid):
            return status
        time.sleep(0.2)
    status = runs.read_status(run_dir)
    if status and status.pid and runs.pid_alive(status.pid):
        os.kill(status.pid, signal.SIGKILL)
    raise AssertionError(f"the trainer did not end: {(run_dir / runs.TRAIN_LOG).read_text()[-1000:]}")


def test_resume_without_a_checkpoint_says_it_starts_over(small_ws: Path):
    """A run whose trainer failed before its first checkpoint (its base model is not on this machine)."""
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = run_cli("--config", str(small_ws), "train", "start", "--json", env=env)
    assert res.returncode == 0, res.stderr
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    assert wait_done(run_dir).state == "failed"
    assert runs.checkpoints(run_dir) == []

    res = run_cli("--config", str(small_ws), "train", "resume", run_dir.name, env=env)

    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"resumed {run_dir.name}: it has no complete checkpoint, so it starts over from step 0"
    wait_done(run_dir)
