"""Fixtures for the real trainer on CPU: a tiny DeepSeek-V2 model dir and a workspace training it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from zelda_tui.demo.data import iter_demo_records  # noqa: E402

from .tiny import build_tiny_model  # noqa: E402


def short_records(name: str, n: int, seed: int = 3) -> list[dict]:
    """Demo records cut short so a CPU step stays fast."""
    out = []
    for rec in iter_demo_records(name, n, seed):
        rec = dict(rec)
        rec["output"] = rec["output"][:240]
        rec["instruction"] = rec["instruction"][:120]
        if "input" in rec:
            rec["input"] = rec["input"][:80]
        out.append(rec)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    texts = [r["instruction"] + "\n" + r.get("input", "") + "\n" + r["output"]
             for r in short_records("asm_gold_asar_pass_20260102", 120) + short_records("vultr_gold_full", 80)]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-deepseek-v2", texts)


TRAIN_CONFIG = """\
[workspace]
datasets_dir = "datasets"

[model]
name = "tiny-zelda"
base = "{base}"
max_seq_len = 256

[datasets.gold]
path = "gold.jsonl"

[datasets.oos]
path = "oos.jsonl"

[mix.tiny_mix]
datasets = ["gold", "oos"]
eval_fraction = 0.1
min_eval_samples = 2
seed = 42

[phases.0]
mix = "tiny_mix"
max_steps = {max_steps}

[lora]
r = 8
alpha = 16
dropout = 0.0

[train]
device = "cpu"
micro_batch = 2
grad_accum = 1
logging_steps = 1
eval_steps = {every}
checkpoint_every_steps = {every}
keep_checkpoints = 2
warmup_ratio = 0.0
"""


def make_workspace(root: Path, base: Path, max_steps: int = 6, every: int = 3) -> Path:
    ds = root / "datasets"
    ds.mkdir(parents=True)
    for name, source, n in (("gold", "asm_gold_asar_pass_20260102", 40), ("oos", "oos_enriched_v1_normalized_notodo", 30)):
        (ds / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short_records(source, n)))
    cfg = root / "config.toml"
    cfg.write_text(TRAIN_CONFIG.format(base=base, max_steps=max_steps, every=every))
    return cfg


@pytest.fixture
def train_ws(tmp_path: Path, tiny_model: Path) -> Path:
    return make_workspace(tmp_path / "ws", tiny_model)


def completed_run(cfg: Path) -> Path:
    """The run dir of phase 0 of `cfg`, trained here by the real CLI to completion."""
    from tests.conftest import run_cli
    from zelda_tui.core import runs

    res = run_cli("train", "start", "--phase", "0", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    status = wait_for(lambda: (s := runs.read_status(run_dir)) and s.state in ("completed", "failed") and s)
    assert status.state == "completed", (run_dir / runs.TRAIN_LOG).read_text()[-2000:]
    return run_dir


def wait_for(predicate, timeout: float = 240.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")
