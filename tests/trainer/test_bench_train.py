"""bench/bench_train_gpu.py stays runnable: its --dry mode on the CPU, and its hub-layout checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_train_gpu as bench
from zelda_tui.backends.trainer.modeling import load_model
from zelda_tui.core.train_config import RunConfig

REPO = Path(__file__).resolve().parents[2]
KEYS = {"variant", "tokens_per_s", "step_s", "tokens_per_step", "load_peak_allocated_gib", "load_peak_reserved_gib",
        "train_peak_allocated_gib", "train_peak_reserved_gib", "mfu", "adapted_modules", "trainable_params", "versions"}


@pytest.mark.timeout(120)
def test_dry_bench_runs_every_cpu_variant_and_writes_json_lines(tmp_path: Path):
    out = tmp_path / "bench.jsonl"
    res = subprocess.run([sys.executable, str(REPO / "bench" / "bench_train_gpu.py"), "--dry", "--out", str(out)],
                         capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in rows] == ["plain", "ours", "ours-dense"]  # ours-packed needs CUDA (flex backward)
    assert "ours-packed left out" in res.stderr
    for row in rows:
        assert KEYS <= set(row), KEYS - set(row)
        assert row["tokens_per_s"] > 0 and row["tokens_per_step"] == 2 * 128 and row["trainable_params"] > 0
    ours = {r["variant"]: r for r in rows}
    assert ours["ours"]["adapted_modules"] == ours["ours-dense"]["adapted_modules"]


def test_the_written_checkpoint_is_per_expert_and_quantised_while_loading(tmp_path: Path):
    info = bench.write_model(tmp_path / "m", "tiny", "cpu")
    config = bench.model_config("tiny")
    index = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())["weight_map"]
    assert "model.layers.1.mlp.experts.7.gate_proj.weight" in index and "model.layers.1.mlp.experts.0.down_proj.weight" in index
    assert not any(k.endswith("experts.gate_up_proj") for k in index)
    cfg = RunConfig(name="b")
    cfg.model.base = str(tmp_path / "m")
    _, report = load_model(cfg, "cpu")
    moe_layers = config["num_hidden_layers"] - config["first_k_dense_replace"]
    assert (report.tensors_while_loading, report.tensors) == (2 * moe_layers, 0)  # as on the hub checkpoint
    assert report.four_bit + report.not_quantised == info["total_params"]


def test_full_config_is_the_reference_model():
    config = bench.model_config("full")
    assert config["n_routed_experts"] == 64 and config["num_hidden_layers"] == 27 and "auto_map" not in config
