"""The real trainer program started by the real CLI, detached, on the tiny model (CPU)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.core import runs

from .conftest import make_workspace, wait_for


def start(cfg: Path, *extra: str) -> Path:
    res = run_cli("train", "start", "--phase", "0", "--json", "--config", str(cfg), *extra)
    assert res.returncode == 0, res.stderr
    return Path(json.loads(res.stdout)["run_dir"])


def finished(run_dir: Path) -> runs.RunStatus | None:
    status = runs.read_status(run_dir)
    return status if status and status.state in ("completed", "stopped", "failed") else None


def train_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in runs.read_metrics(run_dir) if m["event"] == "train"}


def test_run_writes_the_run_directory_contract(train_ws: Path):
    train_ws.write_text(train_ws.read_text().replace("[train]\n", "[train]\neval_max_samples = 3\n"))
    run_dir = start(train_ws)
    assert run_dir.parent == train_ws.parent / "runs" and run_dir.name.startswith("tiny-zelda_")
    status = wait_for(lambda: finished(run_dir))
    log = (run_dir / runs.TRAIN_LOG).read_text()
    assert status.state == "completed", log[-3000:]
    assert "in 4-bit" in log and "routed experts" in log and "trainable parameters" in log
    assert "adapted: model.layers.1.mlp.shared_experts.gate_proj" in log
    import torch
    import transformers

    assert f"versions: torch {torch.__version__}, transformers {transformers.__version__}, trl " in log
    assert "eval every 3 steps on oos 3 of 3, gold 3 of 4" in log  # at most eval_max_samples per dataset
    assert "batches: train.packing = by_length, attention sdpa" in log
    assert "eval at step 3: eval took " in log and "training done: eval took " in log  # its share of wall time

    metrics = runs.read_metrics(run_dir)
    train = [m for m in metrics if m["event"] == "train"]
    evals = [m for m in metrics if m["event"] == "eval"]
    assert [m["step"] for m in train] == [1, 2, 3, 4, 5, 6]
    for m in train:
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "vram_peak_gb", "elapsed_s", "eta_s", "epoch"):
            assert m[key] is not None, key
    assert [e["step"] for e in evals] == [3, 6]
    for e in evals:
        assert set(k for k in e if k.startswith("eval_loss/")) == {"eval_loss/gold", "eval_loss/oos"}
        lo, hi = sorted((e["eval_loss/gold"], e["eval_loss/oos"]))
        assert lo <= e["eval_loss"] <= hi  # the sample-weighted mean of the two

    assert [p.name for _, p in runs.checkpoints(run_dir)] == ["checkpoint-3", "checkpoint-6"]
    assert status.last_checkpoint == "checkpoints/checkpoint-6"
    assert status.heartbeat >= status.started

    adapters = run_dir / runs.ADAPTERS
    card = (adapters / "README.md").read_text()
    assert "mix: `tiny_mix` (phase 0)" in card and "sha256 train.jsonl" in card and "final eval loss" in card
    assert f"- versions: torch {torch.__version__}, transformers {transformers.__version__}" in card
    assert "- batches: packing=by_length, attention=sdpa" in card
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from zelda_tui.backends.trainer.lora import adapted_modules, load_adapters
    from zelda_tui.core.train_config import load_run_config

    base = AutoModelForCausalLM.from_pretrained(load_run_config(run_dir).model.base)
    loaded = load_adapters(base, str(adapters))
    assert "model.layers.1.mlp.shared_experts.gate_proj" in adapted_modules(loaded)["modules"]
    assert not adapted_modules(loaded)["parameters"]  # nothing moved onto the routed experts
    saved = load_file(str(adapters / "adapter_model.safetensors"))
    state = loaded.state_dict()
    for key, tensor in saved.items():  # every trained tensor is on the model, and B moved off zero
        live = state[key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")]
        assert (live.float() == tensor.float()).all(), key
    assert any(k.endswith("lora_B.weight") and saved[k].abs().sum() > 0 for k in saved)

    listed = run_cli("train", "list", "--json", "--config", str(train_ws))
    assert json.loads(listed.stdout)[0]["state"] == "completed"
    tail = run_cli("tail", run_dir.name, "--config", str(train_ws))
    assert tail.returncode == 0
    assert "[metrics] step 6 eval_loss" in tail.stdout and "done: adapters in" in tail.stdout


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path: Path, tiny_model: Path):
    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=40, every=20)
    run_dir = start(cfg)
    wait_for(lambda: max(train_losses(run_dir), default=0) >= 3)
    stop = run_cli("train", "stop", run_dir.name, "--config", str(cfg))
    assert stop.returncode == 0, stop.stderr
    status = wait_for(lambda: finished(run_dir))
    assert status.state == "stopped", (run_dir / runs.TRAIN_LOG).read_text()[-2000:]
    stopped_at = status.step
    assert 3 <= stopped_at < 40
    assert runs.latest_checkpoint(run_dir).name == f"checkpoint-{stopped_at}"

    again = run_cli("train", "resume", run_dir.name, "--config", str(cfg))
    assert again.returncode == 0, again.stderr
    status = wait_for(lambda: finished(run_dir) if runs.read_status(run_dir).state != "stopped" else None)
    assert status.state == "completed"
    steps = sorted(train_losses(run_dir))
    assert steps[-1] == 40 and min(s for s in steps if s > stopped_at) == stopped_at + 1
    assert "resuming from checkpoint-" in (run_dir / runs.TRAIN_LOG).read_text()


def test_kill_9_then_resume_keeps_the_data_order(tmp_path: Path, tiny_model: Path):
    """After kill -9 and a restart the losses match an uninterrupted run step for step."""
    ref_cfg = make_workspace(tmp_path / "ref", tiny_model, max_steps=10, every=4)
    ref_dir = start(ref_cfg)
    cut_cfg = make_workspace(tmp_path / "cut", tiny_model, max_steps=10, every=4)
    cut_dir = start(cut_cfg)
    wait_for(lambda: runs.latest_checkpoint(cut_dir) and max(train_losses(cut_dir), default=0) >= 5, every=0.02)
    os.kill(runs.read_status(cut_dir).pid, signal.SIGKILL)
    wait_for(lambda: not runs.pid_alive(runs.read_status(cut_dir).pid))
    listed = json.loads(run_cli("train", "list", "--json", "--config", str(cut_cfg)).stdout)
    assert listed[0]["state"] == "died"
    # a half-written checkpoint left by the kill is ignored on resume
    (cut_dir / runs.CHECKPOINTS / "checkpoint-9").mkdir(exist_ok=True)
    assert run_cli("train", "resume", cut_dir.name, "--config", str(cut_cfg)).returncode == 0
    assert wait_for(lambda: finished(cut_dir)).state == "completed"
    assert wait_for(lambda: finished(ref_dir)).state == "completed"
    ref, cut = train_losses(ref_dir), train_losses(cut_dir)
    assert sorted(ref) == sorted(cut) == list(range(1, 11))
    for step in range(1, 11):
        assert cut[step] == pytest.approx(ref[step], rel=1e-3), step


def test_bad_inputs_fail_clearly(tmp_path: Path, tiny_model: Path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "zelda_tui.backends.trainer", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "run.toml: missing" in res.stderr

    cfg = make_workspace(tmp_path / "ws", tmp_path / "no-such-model")
    run_dir = start(cfg)
    status = wait_for(lambda: finished(run_dir))
    assert status.state == "failed"
    assert "no-such-model" in status.message and "\n" not in status.message
    bad = run_cli("train", "start", "--phase", "7", "--config", str(cfg))
    assert bad.returncode == 2 and "no [phases.7]" in bad.stderr


def test_two_process_ddp_run_on_cpu(tmp_path: Path, tiny_model: Path):
    """train.gpus = 2 launches torchrun (gloo on CPU); rank 0 alone writes the run directory."""
    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=4, every=2)
    cfg.write_text(cfg.read_text().replace("grad_accum = 1", "grad_accum = 2\ngpus = 2"))
    run_dir = start(cfg)
    status = wait_for(lambda: finished(run_dir))
    log = (run_dir / runs.TRAIN_LOG).read_text()
    assert status.state == "completed", log[-3000:]
    assert [m["step"] for m in runs.read_metrics(run_dir) if m["event"] == "train"] == [1, 2, 3, 4]
    assert [p.name for _, p in runs.checkpoints(run_dir)] == ["checkpoint-2", "checkpoint-4"]
    assert log.count("trainable parameters") == 2  # both ranks loaded their own copy


def test_early_stopping_marks_the_best_checkpoint(tmp_path: Path, tiny_model: Path):
    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=40, every=2)
    cfg.write_text(cfg.read_text().replace("[train]\n", '[train]\nlr = 0.0\nearly_stopping_dataset = "gold"\nearly_stopping_patience = 2\n'))
    run_dir = start(cfg)
    status = wait_for(lambda: finished(run_dir))
    assert status.state == "completed", (run_dir / runs.TRAIN_LOG).read_text()[-2000:]
    # lr 0: the gold eval loss never improves, so training stops after `patience` more evaluations
    assert status.step == 6
    assert status.best_checkpoint == "checkpoints/checkpoint-2"
    assert "best checkpoint: checkpoints/checkpoint-2" in (run_dir / runs.ADAPTERS / "README.md").read_text()


def test_nan_loss_stops_with_a_clear_status(tmp_path: Path, tiny_model: Path):
    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=40, every=20)
    cfg.write_text(cfg.read_text().replace("[train]\n", "[train]\nlr = 1e30\n"))
    run_dir = start(cfg)
    status = wait_for(lambda: finished(run_dir))
    assert status.state == "failed"
    assert "is nan at step" in status.message.lower() and "lower lr" in status.message
    assert status.step < 40


def test_disk_full_fails_clearly_corrupts_nothing_and_resumes(tmp_path: Path, tiny_model: Path):
    """The run dir on a small tmpfs filled to the last byte: the trainer says "disk full", the
    last status.json stays whole; with room again, resume trains to the end."""
    import shutil
    import subprocess
    import sys

    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=2, every=2)
    runs_root = tmp_path / "ws" / "runs"
    runs_root.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(runs_root)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk: {res.stderr.strip()}")
    try:
        from zelda_tui.core.run_plan import create_run, plan_run
        from zelda_tui.services import build_services

        services = build_services(cfg)
        try:
            services.datasets.mix_build("tiny_mix")
            run_dir = create_run(services.config, plan_run(services.config, None, 0), services.config.mix_dir("tiny_mix"),
                                 runs_root)
        finally:
            services.close()
        before = (run_dir / runs.STATUS).read_bytes()
        filler = runs_root / "filler"
        with open(filler, "wb") as fh:  # every free block taken
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        full = subprocess.run([sys.executable, "-m", "zelda_tui.backends.trainer", str(run_dir)], capture_output=True,
                              text=True, timeout=300)
        assert full.returncode == 1
        assert f"disk full under {run_dir}" in full.stdout and f"train resume {run_dir.name}" in full.stdout
        assert "Traceback" not in full.stdout + full.stderr
        assert (run_dir / runs.STATUS).read_bytes() == before  # the atomic write left the old one whole
        filler.unlink()
        res = run_cli("train", "resume", run_dir.name, "--config", str(cfg))
        assert res.returncode == 0, res.stderr
        done = wait_for(lambda: finished(run_dir))
        assert done.state == "completed", (run_dir / runs.TRAIN_LOG).read_text()[-2000:]
    finally:
        subprocess.run(["umount", "-l", str(runs_root)], check=False)
        shutil.rmtree(runs_root, ignore_errors=True)
