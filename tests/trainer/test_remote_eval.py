"""Eval where the model lives: a remote run's checkpoints are evaluated on its box (the loopback
sshd, whose python is the test venv's), never fetched here; answers come home with the mirror and
are validated with Asar and scored here. Also the box evaluating by itself while training
([eval] during_training = "after" / "alongside")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.core import eval_worker, evals, runs
from zelda_tui.core.store import Store

from .conftest import wait_for
from .test_eval_run import TOKENS, prompt_file
from .test_remote_train import remote_workspace


@pytest.fixture(autouse=True)
def nothing_left_running(tmp_path: Path):
    """Detached trainers and generators outlive a failing test: kill what this test's box still runs."""
    yield
    for status_file in tmp_path.glob("ws*/box/models/*/status.json"):
        status = runs.read_status(status_file.parent)
        if status and status.pid and runs.pid_alive(status.pid):
            os.kill(status.pid, signal.SIGKILL)
    for worker_file in tmp_path.glob(f"ws*/box/models/*/{evals.EVALS_DIR}/*/{eval_worker.WORKER_FILE}"):
        worker = eval_worker.read_worker(worker_file.parent)
        if worker and worker.pid and runs.pid_alive(worker.pid):
            os.kill(worker.pid, signal.SIGKILL)


def start_remote(cfg: Path, *extra: str) -> tuple[str, Path]:
    res = run_cli("train", "start", "--phase", "0", "--remote", "gpu-box", "--accept-new-host-key", "--json",
                  "--config", str(cfg), *extra)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    return info["name"], Path(info["remote_dir"])


def finished(remote: Path) -> runs.RunStatus:
    status = wait_for(lambda: (s := runs.read_status(remote)) and s.state in ("completed", "failed") and s)
    assert status.state == "completed", (remote / runs.TRAIN_LOG).read_text()[-3000:]
    return status


def eval_cli_popen(cfg: Path, run: str, prompts: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ZELDA_TUI_CONFIG"}
    return subprocess.Popen([sys.executable, "-m", "zelda_tui", "eval", "run", "--run", run, "--prompts", str(prompts),
                             "--max-new-tokens", TOKENS, "--batch-size", "2", "--json", "--config", str(cfg), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def leaderboard_rows(cfg: Path, run: str) -> dict[str, dict]:
    res = run_cli("leaderboard", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    return {r["checkpoint"]: r for r in json.loads(res.stdout)["rows"] if r["run"] == run}


def test_a_remote_runs_checkpoints_are_evaluated_on_its_box(tmp_path: Path, tiny_model: Path, sshd):
    cfg = remote_workspace(tmp_path / "ws", tiny_model, sshd, max_steps=4, every=2)
    name, remote = start_remote(cfg)
    finished(remote)
    local = tmp_path / "ws" / "runs" / name
    prompts = prompt_file(tmp_path / "held_out.jsonl")

    # the generator runs on the box; the SSH connections die mid-eval and the eval still completes
    proc = eval_cli_popen(cfg, name, prompts)
    box_edir = remote / evals.EVALS_DIR / "held_out"
    wait_for(lambda: (w := eval_worker.read_worker(box_edir)) and w.state == "generating", timeout=120)
    assert sshd.drop_sessions() > 0
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert [(c["checkpoint"], c["state"]) for c in report["checkpoints"]] == [
        ("base", "generated"), ("checkpoint-2", "generated"), ("checkpoint-4", "generated")], err
    assert "generating on the box" in err
    for c in ("base", "checkpoint-2", "checkpoint-4"):  # generated there, copied here; no checkpoint fetched
        assert (box_edir / f"{c}.jsonl").read_bytes() == (local / evals.EVALS_DIR / "held_out" / f"{c}.jsonl").read_bytes()
    assert not (local / runs.CHECKPOINTS).exists()
    rows = leaderboard_rows(cfg, name)
    assert set(rows) == {"base", "checkpoint-2", "checkpoint-4"} and rows["checkpoint-4"]["prompts"] == 4

    # each answer scored once, however many connections died
    store = Store(cfg.parent / "state.sqlite")
    try:
        for c in ("base", "checkpoint-2", "checkpoint-4"):
            stored = store.eval_rows(name, c, "held_out")
            assert sorted(r["prompt_idx"] for r in stored) == [0, 1, 2, 3]
    finally:
        store.close()

    # a second eval generates nothing: the box has every answer
    proc = eval_cli_popen(cfg, name, prompts)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert {c["state"] for c in json.loads(out)["checkpoints"]} == {"reused"}

    # a checkpoint deleted on the box while the eval runs fails alone, with a clear line
    proc = eval_cli_popen(cfg, name, prompts, "--samples", "1")
    wait_for(lambda: (w := eval_worker.read_worker(box_edir)) and w.state == "generating" and w.checkpoint == "base",
             timeout=120)
    shutil.rmtree(remote / runs.CHECKPOINTS / "checkpoint-4")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    states = {c["checkpoint"]: c for c in json.loads(out)["checkpoints"]}
    assert states["base"]["state"] == states["checkpoint-2"]["state"] == "generated"
    assert states["checkpoint-4"]["state"] == "failed" and "deleted" in states["checkpoint-4"]["message"]

    # bad input: no checkpoint on the box yet; a box python without the generator's stack
    shutil.rmtree(remote / runs.CHECKPOINTS)
    shutil.rmtree(remote / runs.ADAPTERS)
    res = run_cli("eval", "run", "--run", name, "--prompts", str(prompts), "--config", str(cfg))
    assert res.returncode == 1 and "no checkpoint on gpu-box yet" in res.stderr, res.stderr
    box_json = local / "box.json"
    box_json.write_text(json.dumps({**json.loads(box_json.read_text()), "python": "/usr/bin/python3"}))
    res = run_cli("eval", "run", "--run", name, "--checkpoint", "base", "--prompts", str(prompts), "--samples", "2",
                  "--config", str(cfg))
    assert res.returncode == 1 and "cannot generate eval answers (missing: torch" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 3


@pytest.mark.parametrize("mode", ["after", "alongside"])
def test_the_box_evaluates_checkpoints_by_itself(tmp_path: Path, tiny_model: Path, sshd, mode: str):
    ws = tmp_path / f"ws-{mode}"
    prompts = prompt_file(tmp_path / "held_out.jsonl")
    cfg = remote_workspace(ws, tiny_model, sshd, max_steps=4 if mode == "after" else 2000, every=2)
    with open(cfg, "a") as fh:
        fh.write(f'\n[eval]\nduring_training = "{mode}"\nprompts = "{prompts}"\nmax_new_tokens = {TOKENS}\n')
    name, remote = start_remote(cfg, "--eval-during", mode)
    box_edir = remote / evals.EVALS_DIR / "held_out"
    if mode == "alongside":  # a checkpoint is evaluated while the trainer goes on (then the run is stopped)
        first = wait_for(lambda: next(iter(sorted(box_edir.glob("checkpoint-*.jsonl"))), None), timeout=300)
        assert runs.read_status(remote).state == "running"
        assert run_cli("train", "stop", name, "--config", str(cfg)).returncode == 0
        status = wait_for(lambda: (s := runs.read_status(remote)) and s.state == "stopped" and s, timeout=240)
    else:
        status = finished(remote)
    worker = wait_for(lambda: (w := eval_worker.read_worker(box_edir)) and w.state in ("finished", "failed") and w,
                      timeout=240)
    assert worker.state == "finished" and worker.mode == mode, (box_edir / evals.GENERATE_LOG).read_text()[-3000:]

    # the mirror brings the answers home (here: `tail`, which follows until the box's eval is done too) and
    # the leaderboard scores them: no `train fetch`, no `eval run`
    res = run_cli("tail", name, "--config", str(cfg))
    assert res.returncode == 0, res.stderr[-2000:]
    rows = leaderboard_rows(cfg, name)
    kept = [p.name for _, p in runs.checkpoints(remote)]  # keep_checkpoints rotates the older ones out
    assert set(kept) <= set(rows) and "base" in rows
    created = {c: evals.read_answers_header(box_edir / f"{c}.jsonl")["created"] for c in rows}
    if mode == "after":
        assert min(created.values()) >= status.finished  # nothing evaluated before training ended
    else:
        assert created[first.stem] < status.finished
    events = [json.loads(line) for line in (box_edir / evals.EVENTS_FILE).read_text().splitlines()]
    assert {e["checkpoint"] for e in events if e["event"] == "done"} == set(rows)
    assert not [e for e in events if e["event"] == "error"]  # checkpoints rotated out are "gone", not failures
