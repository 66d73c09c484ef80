"""`zelda-tui estimate`: mix tokens from QA, the estimator's verdict, and our own measured throughput."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from zelda_tui.core import runs
from zelda_tui.core.train_config import RunConfig
from zelda_tui.services import build_services

MODEL = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"


def estimate(cfg: Path, *args: str) -> dict:
    res = run_cli("estimate", "--json", "--model", MODEL, "--config", str(cfg), *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_estimate_uses_the_mix_and_prices_the_run(small_ws: Path):
    est = estimate(small_ws, "--gpu", "NVIDIA A100-SXM4-80GB", "--price", "2.0", "--mix", "small", "--seq-len", "4096")
    assert est["gpu"] == "A100 80GB" and est["mix"] == "small"
    assert est["train_tokens"] > 0
    assert est["verdict"] == "fits" and 5 < est["vram_gb"] < 40
    hours = est["train_tokens"] * est["epochs"] / est["tokens_per_s_per_gpu"] / 3600
    assert abs(est["hours"] - round(hours, 2)) <= 0.01
    assert abs(est["dollars"] - round(est["hours"] * 2.0, 2)) <= 0.02
    assert est["tokens_per_s_source"].startswith("table")
    bigger = estimate(small_ws, "--gpu", "RTX_4090", "--mix", "small", "--micro-batch", "8", "--seq-len", "4096")
    assert bigger["vram_gb"] > est["vram_gb"] and bigger["verdict"] == "does-not-fit"  # 24 GB card


def test_measured_runs_supersede_the_table(small_ws: Path):
    run_dir = small_ws.parent / "runs" / "tiny_20260101T000000Z"
    run_dir.mkdir(parents=True)
    cfg = RunConfig(name=run_dir.name)
    cfg.model.base, cfg.data.mix = MODEL, "small"
    cfg.save(run_dir)
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=3))
    runs.append_metric(run_dir, "hardware", device="cuda", gpu="NVIDIA H100 80GB HBM3", gpus=1, seq_len=4096, micro_batch=4)
    for step, tps in enumerate((100.0, 12000.0, 12500.0, 13000.0), 1):
        runs.append_metric(run_dir, "train", step=step, loss=1.0, tokens_per_s=tps)
    services = build_services(small_ws)
    try:
        assert [r.state for r in services.runs.list_all()] == ["completed"]
    finally:
        services.close()
    est = estimate(small_ws, "--gpu", "H100_SXM5", "--mix", "small")
    assert est["tokens_per_s_per_gpu"] == 12500.0  # median, the warm-up step dropped
    assert est["tokens_per_s_source"].startswith("measured")


def test_unknown_model_is_named(small_ws: Path):
    res = run_cli("estimate", "--mix", "small", "--config", str(small_ws))
    assert res.returncode == 1 and "no model spec for 'local/tiny'" in res.stderr


def test_a_gpu_name_that_matches_two_cards_takes_the_plans_80gb_and_says_so(small_ws: Path):
    res = run_cli("estimate", "--json", "--model", MODEL, "--gpu", "A100", "--mix", "small", "--config", str(small_ws))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["gpu"] == "A100 80GB"
    assert res.stderr == ("zelda-tui: --gpu 'A100' matches A100 80GB and A100 40GB: using A100 80GB (the plan's card); "
                          "--gpu 'A100 40GB' prices the other\n")
    exact = run_cli("estimate", "--json", "--model", MODEL, "--gpu", "A100 40GB", "--mix", "small", "--config", str(small_ws))
    assert json.loads(exact.stdout)["gpu"] == "A100 40GB" and exact.stderr == ""
