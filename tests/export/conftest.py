"""A trained run of the tiny DeepSeek-V2 (the trainer tests' fixtures) to export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.trainer.conftest import make_workspace, tiny_model, wait_for  # noqa: F401  (tiny_model: a fixture)
from zelda_tui.core import runs

LR = "lr = 0.01\n"  # a few steps at a high rate: the adapter moves the logits well beyond bf16 rounding


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_model: Path) -> tuple[Path, Path]:
    """(config, run dir) of a completed 4-step run with checkpoints at steps 2 and 4 and final adapters."""
    cfg = make_workspace(tmp_path_factory.mktemp("export") / "ws", tiny_model, max_steps=4, every=2)
    cfg.write_text(cfg.read_text() + LR)
    res = run_cli("train", "start", "--phase", "0", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    status = wait_for(lambda: (s := runs.read_status(run_dir)) and s.state in ("completed", "failed") and s)
    assert status.state == "completed", (run_dir / runs.TRAIN_LOG).read_text()[-2000:]
    return cfg, run_dir
