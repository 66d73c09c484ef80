"""A trained run of the trainer tests' tiny DeepSeek-V2 to export (with a q LoRA rank: see tiny_v2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import completed_run, make_workspace, short_records
from tests.trainer.tiny import build_tiny_model

# a few steps at a high rate: the adapter moves the logits well beyond bf16 rounding
TRAIN_EXTRA = "lr = 0.01\neval_max_samples = 2\n"


@pytest.fixture(scope="session")
def tiny_v2(tmp_path_factory) -> Path:
    """The tiny DeepSeek-V2 with q_a_proj/q_b_proj: llama.cpp tells DeepSeek-V2-Lite's attention (q_proj, as
    the trainer tests' tiny model has) by its 26 or 27 layers, so a 2-layer one without a q rank converts
    but does not load; 27 tiny layers train at ~40 s a step on these CPUs."""
    texts = [r["instruction"] + "\n" + r.get("input", "") + "\n" + r["output"]
             for r in short_records("asm_gold_asar_pass_20260102", 120) + short_records("vultr_gold_full", 80)]
    return build_tiny_model(tmp_path_factory.mktemp("tiny-v2") / "tiny-deepseek-v2", texts, q_lora_rank=64)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_v2: Path) -> tuple[Path, Path]:
    """(config, run dir) of a completed 4-step run with checkpoints at steps 2 and 4 and final adapters."""
    cfg = make_workspace(tmp_path_factory.mktemp("export") / "ws", tiny_v2, max_steps=4, every=2)
    cfg.write_text(cfg.read_text() + TRAIN_EXTRA)
    return cfg, completed_run(cfg)
