"""Remote training end to end: the real CLI drives the real trainer on the tiny model over SSH to
a real sshd on 127.0.0.1 (the "GPU box" is this machine, its python named by remote.python)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.core import runs

from .conftest import make_workspace, wait_for


@pytest.fixture(autouse=True)
def no_trainer_left_behind(tmp_path: Path):
    """Detached trainers outlive a failing test: kill whatever a box dir of this test still runs."""
    yield
    for status_file in tmp_path.glob("ws/box/models/*/status.json"):
        status = runs.read_status(status_file.parent)
        if status and status.pid and runs.RunState.of(status.state).is_live and runs.pid_alive(status.pid):
            os.kill(status.pid, signal.SIGKILL)


def remote_workspace(root: Path, tiny_model: Path, server, max_steps: int = 6, every: int = 3) -> Path:
    cfg = make_workspace(root, tiny_model, max_steps=max_steps, every=every)
    box = root / "box"
    with open(cfg, "a") as fh:
        fh.write(f"""
[remote]
training_dir = "{box}"
python = "{sys.executable}"
ssh_config = "{server.root / 'ssh_config'}"
known_hosts = "{root / 'known_hosts'}"
""")
    return cfg


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_remote_run_start_tail_fetch(tmp_path: Path, tiny_model: Path, sshd):
    cfg = remote_workspace(tmp_path / "ws", tiny_model, sshd)
    box = tmp_path / "ws" / "box"

    # an unknown host key stops everything before anything is created or uploaded
    res = run_cli("train", "start", "--phase", "0", "--remote", "gpu-box", "--config", str(cfg))
    assert res.returncode == 1
    assert sshd.host_fingerprint in res.stderr and "--accept-new-host-key" in res.stderr
    assert not (tmp_path / "ws" / "runs").exists() or not any((tmp_path / "ws" / "runs").iterdir())
    assert not box.exists()

    # no GPU on this box: refused unless the run says cpu
    res = run_cli("train", "start", "--phase", "0", "--remote", "gpu-box", "--accept-new-host-key", "--device", "auto",
                  "--config", str(cfg))
    assert res.returncode == 1 and "no GPU" in res.stderr and "gpu-box" in res.stderr

    res = run_cli("train", "start", "--phase", "0", "--remote", "gpu-box", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    name, local = info["name"], Path(info["run_dir"])
    remote = box / "models" / name
    assert info["remote_dir"] == str(remote) and info["host"] == "gpu-box"
    assert (remote / "run.toml").read_bytes() == (local / "run.toml").read_bytes()
    assert sha(remote / "data" / "train.jsonl") == sha(local / "data" / "train.jsonl")
    assert (box / "datasets" / "tiny_mix" / "train.jsonl").stat().st_ino == (remote / "data" / "train.jsonl").stat().st_ino

    # the tail follows it over SSH to the end; the local mirror equals the box's files
    res = run_cli("tail", name, "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[link] gpu-box" in res.stderr and "connected" in res.stderr
    assert "[metrics] step 6 loss" in res.stdout and "eval_loss" in res.stdout
    assert (local / runs.TRAIN_LOG).read_bytes() == (remote / runs.TRAIN_LOG).read_bytes()
    assert (local / runs.METRICS).read_bytes() == (remote / runs.METRICS).read_bytes()

    listed = {r["name"]: r for r in json.loads(run_cli("train", "list", "--json", "--config", str(cfg)).stdout)}
    assert listed[name]["state"] == "completed" and listed[name]["host"] == "gpu-box" and listed[name]["step"] == 6

    # adapters and a checkpoint come home, verified; a second fetch moves nothing
    res = run_cli("train", "fetch", name, "--checkpoint", "latest", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["fetched"] == ["lora_adapters", "checkpoints/checkpoint-6"] and got["bytes"] > 0
    for f in (remote / "lora_adapters").rglob("*"):
        if f.is_file():
            assert sha(local / "lora_adapters" / f.relative_to(remote / "lora_adapters")) == sha(f)
    assert runs.checkpoints(local)[-1][0] == 6
    again = json.loads(run_cli("train", "fetch", name, "--checkpoint", "latest", "--json", "--config", str(cfg)).stdout)
    assert again["bytes"] == 0



def test_remote_stop_and_resume(tmp_path: Path, tiny_model: Path, sshd):
    cfg = remote_workspace(tmp_path / "ws", tiny_model, sshd)
    box = tmp_path / "ws" / "box"
    res = run_cli("train", "start", "--phase", "0", "--remote", "gpu-box", "--accept-new-host-key", "--max-steps", "400",
                  "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "upload mix" in res.stderr
    name = json.loads(res.stdout)["name"]
    remote = box / "models" / name
    wait_for(lambda: (runs.read_status(remote) or runs.RunStatus()).step >= 2)
    environ = Path(f"/proc/{runs.read_status(remote).pid}/environ").read_bytes().split(b"\0")
    assert f"HF_HOME={box / 'hf'}".encode() in environ  # model downloads land on the checked training disk
    res = run_cli("train", "stop", name, "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    stopped = wait_for(lambda: (s := runs.read_status(remote)) and s.state == "stopped" and s)
    assert stopped.last_checkpoint
    status = json.loads(run_cli("train", "status", name, "--json", "--config", str(cfg)).stdout)
    assert status["state"] == "stopped" and status["synced_at"] and status["step"] == stopped.step
    said = run_cli("train", "status", name, "--config", str(cfg)).stdout  # what the start probe found on the box
    box_line = next(line.strip() for line in said.splitlines() if line.strip().startswith("box: "))
    assert "no GPU" in box_line and "python" in box_line, box_line  # this box has no GPU; the env it runs with
    assert run_cli("train", "stop", name, "--config", str(cfg)).returncode == 1  # nothing to stop

    # resume re-sends nothing that is already there (every file's sha256 matches) and goes on from the checkpoint
    res = run_cli("train", "resume", name, "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "upload mix" not in res.stderr
    wait_for(lambda: (s := runs.read_status(remote)) and s.state == "running" and s.step > stopped.step)
    assert "resuming from checkpoint-" in (remote / runs.TRAIN_LOG).read_text()
    res = run_cli("train", "stop", name, "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    try:
        wait_for(lambda: (s := runs.read_status(remote)) and s.state == "stopped", timeout=120)
    except AssertionError:
        raise AssertionError((remote / runs.TRAIN_LOG).read_text()[-3000:]) from None
