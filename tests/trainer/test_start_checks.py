"""What the trainer refuses at start, in one line: a stack version outside the supported range, a big
model (or a GPU box) without usable CUDA, bad [train]/[lora] values; and what start-up must not do."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.version import Version

from zelda_tui.backends.trainer import versions
from zelda_tui.backends.trainer.modeling import cuda_unusable, load_model, pick_device
from zelda_tui.core import runs
from zelda_tui.core.errors import ConfigError, ZeldaError
from zelda_tui.core.train_config import RunConfig, TrainSection, apply, load_run_config

from .tiny import REFERENCE

REPO = Path(__file__).resolve().parents[2]


# --- versions ------------------------------------------------------------------------------


def test_installed_stack_is_in_the_supported_range():
    stack = versions.check()
    assert set(versions.SUPPORTED) <= set(stack)


@pytest.mark.parametrize("package, version", [("transformers", "4.57.1"), ("transformers", "6.0.0"),
                                              ("bitsandbytes", "0.49.1"), ("peft", "0.19.1"), ("trl", "0.29.1")])
def test_a_version_outside_the_range_is_one_clear_line(package: str, version: str):
    stack = {**versions.installed(), package: version}
    with pytest.raises(ZeldaError) as info:
        versions.check(stack)
    message = str(info.value)
    assert message.startswith(f"{package} {version} is outside the supported range {package}>=") and "\n" not in message
    assert "pip install" in message


def test_pyproject_train_extra_has_the_same_lower_bounds():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    for name, (low, high) in versions.SUPPORTED.items():
        wanted = f"{name}>={low}" + (f",<{high}" if high else "")
        assert wanted in extra, (wanted, extra)


def test_the_min_versions_constraints_pin_each_lower_bound():
    """`make test-min-versions` runs the trainer tests on constraints/train-min.txt: each floor we state has run."""
    pins = dict(line.split("==") for line in (REPO / "constraints/train-min.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for name, (low, _high) in versions.SUPPORTED.items():
        assert Version(pins[name]) == Version(low), (name, pins.get(name), low)


# --- device ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_model(tmp_path_factory) -> Path:
    """DeepSeek-Coder-V2-Lite's config alone (15.7B parameters): never allocated, only counted."""
    out = tmp_path_factory.mktemp("big")
    shutil.copy(REFERENCE / "config.json", out / "config.json")
    return out


@pytest.mark.skipif(cuda_unusable() is None, reason="CUDA is usable here: the guard lets the run through")
def test_a_big_model_without_cuda_fails_at_start_unless_cpu_is_asked_for(tmp_path: Path, big_model: Path):
    cfg = RunConfig(name="big")
    cfg.model.base = str(big_model)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg.save(run_dir)
    res = subprocess.run([sys.executable, "-m", "zelda_tui.backends.trainer", str(run_dir)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    status = runs.read_status(run_dir)
    assert status.state == "failed" and "\n" not in status.message
    assert status.message.startswith(f"refusing to train on the CPU: {big_model} has 15.7B parameters but CUDA is not usable")
    if torch.version.cuda is None:  # this box: the CPU wheel, and what to install instead
        assert "is a CPU-only build; install a CUDA build: pip install torch==" in status.message
    assert 'set train.device = "cpu" to train on the CPU anyway' in status.message
    assert "Traceback" not in res.stdout + res.stderr

    cfg.train.device = "cpu"  # asked for explicitly: allowed (nothing is loaded to decide)
    assert pick_device(cfg) == "cpu"


def test_a_small_model_on_a_box_without_gpus_trains_on_the_cpu(tiny_model: Path):
    cfg = RunConfig(name="tiny")
    cfg.model.base = str(tiny_model)
    if cuda_unusable() is not None and not Path("/proc/driver/nvidia/gpus").is_dir():
        assert pick_device(cfg) == "cpu"


# --- start-up work ----------------------------------------------------------------------------


def test_loading_never_dequantises_an_expert_just_to_inspect_it(tiny_model: Path, monkeypatch):
    """The post-load check looks at raw parameters: reading a 4-bit expert through its
    parametrization would dequantise the whole fused tensor (a layer's experts in bf16)."""
    import bitsandbytes.functional as bnb_functional

    from zelda_tui.backends.trainer.lora import apply_lora, resolve_targets, trainable_parameters

    calls: list[tuple] = []
    original = bnb_functional.dequantize_4bit

    def counting(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return original(*args, **kwargs)

    monkeypatch.setattr(bnb_functional, "dequantize_4bit", counting)
    cfg = RunConfig(name="t")
    cfg.model.base = str(tiny_model)
    cfg.lora.r, cfg.lora.alpha = 4, 8
    model, report = load_model(cfg, "cpu")
    assert report.tensors_while_loading > 0
    peft_model = apply_lora(model, cfg.lora, resolve_targets(model, cfg.lora))
    trainable_parameters(peft_model)
    assert calls == []
    ids = torch.randint(0, 100, (1, 8))
    peft_model(input_ids=ids)  # a forward does dequantise: the counter sees it
    assert calls


# --- [train] / [lora] values --------------------------------------------------------------------


@pytest.mark.parametrize("key, value, problem", [
    ("packing", "fast", "must be one of by_length, packed, dense"),
    ("eval_max_samples", -1, "must be >= 0 (0 = every eval sample)"),
    ("eval_steps", 0, "must be >= 1"),
    ("device", "gpu", "must be one of auto, cuda, cpu"),
])
def test_bad_train_values_are_config_errors(key: str, value, problem: str):
    with pytest.raises(ConfigError) as info:
        apply(TrainSection(), {key: value}, "config.toml [train]")
    assert str(info.value) == f"config.toml [train]: `{key}` = {value!r}: {problem}"


def test_defaults_are_the_cheap_ones():
    cfg = RunConfig()
    assert cfg.train.packing == "by_length" and cfg.lora.dropout == 0.0
    assert cfg.train.eval_steps == 50 and cfg.train.eval_max_samples == 200


def test_runs_frozen_with_packing_true_still_load(tmp_path: Path):
    """run.toml from before the modes: `packing = true` was the dense mask, and stays it on resume."""
    cfg = RunConfig(name="old")
    cfg.save(tmp_path)
    text = (tmp_path / "run.toml").read_text().replace('packing = "by_length"', "packing = true")
    (tmp_path / "run.toml").write_text(text)
    assert load_run_config(tmp_path).train.packing == "dense"
