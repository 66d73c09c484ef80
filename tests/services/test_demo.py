"""`zelda-tui demo init`: the finished demo run (run-dir contract, labelled as demo data) and its
scored eval results, through the real CLI; eval without the trainer stack says what to install
before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.evals_seed import make_run
from zelda_tui.core import evals, runs
from zelda_tui.demo import run as demo_run
from zelda_tui.core.train_config import load_run_config

REPO = Path(__file__).resolve().parents[2]
RUN = "zelda-16b-v1-demo_20261124T180000Z"
NO_TORCH = "import sys; sys.modules['torch'] = None; from zelda_tui.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo workspace written by the real command (read-only for these tests)."""
    target = tmp_path_factory.mktemp("demo") / "ws"
    done = run_cli("demo", "init", str(target))
    assert done.returncode == 0, done.stderr
    assert "finished run of made-up demo data" in done.stdout
    return target / "config.toml"


def test_demo_run_follows_the_run_dir_contract(demo_config: Path):
    run_dir = demo_config.parent / "runs" / RUN
    assert demo_run.is_demo_run(run_dir) and "DEMO DATA" in (run_dir / demo_run.MARKER).read_text()
    assert (run_dir / "run.toml").read_text().startswith("# DEMO DATA")
    cfg = load_run_config(run_dir)  # the trainer's own reader accepts it
    assert cfg.name == RUN and cfg.data.mix == "zelda_16b_mix_v1" and cfg.train.max_steps == 1200
    metrics = runs.read_metrics(run_dir)
    train = [m for m in metrics if m["event"] == "train"]
    evals_ = [m for m in metrics if m["event"] == "eval"]
    assert len(train) == 120 and train[-1]["step"] == 1200
    assert {"loss", "lr", "tokens_per_s", "vram_peak_gb", "eta_s", "epoch"} <= set(train[0])
    assert [m["step"] for m in evals_] == [200, 400, 600, 800, 1000, 1200]
    assert "eval_loss/asm_gold_asar_pass_20260102" in evals_[-1] and evals_[-1]["eval_loss"] < evals_[0]["eval_loss"]
    assert metrics[-1] == {**metrics[-1], "event": "status", "state": "completed"}
    status = runs.read_status(run_dir)
    assert status.state == "completed" and status.step == 1200 and "demo data" in status.message
    assert [s for s, _ in runs.checkpoints(run_dir)] == [400, 800, 1200]  # complete checkpoints
    assert (run_dir / runs.ADAPTERS / "adapter_config.json").is_file()
    assert "DEMO DATA" in (run_dir / runs.ADAPTERS / "README.md").read_text()
    assert "step 1200/1200" in (run_dir / runs.TRAIN_LOG).read_text()
    answers = sorted(p.name for p in evals.eval_dir(run_dir, "demo_prompts").glob("*.jsonl"))
    assert answers == ["base.jsonl", "checkpoint-1200.jsonl", "checkpoint-400.jsonl", "checkpoint-800.jsonl",
                       "prompts.jsonl"]


def test_demo_runs_and_leaderboard_are_full_from_the_cli(demo_config: Path):
    listed = run_cli("train", "list", "--json", "--config", str(demo_config))
    assert listed.returncode == 0, listed.stderr
    assert [(r["name"], r["state"]) for r in json.loads(listed.stdout)] == [(RUN, "completed")]

    board = run_cli("leaderboard", "--json", "--config", str(demo_config))
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)["rows"]
    assert [r["checkpoint"] for r in rows] == ["checkpoint-1200", "checkpoint-800", "checkpoint-400", "base"]
    assert rows[0]["assemble_rate"] > rows[-1]["assemble_rate"] and rows[0]["eval_loss"] is not None
    assert rows[0]["prompts"] == 40 and rows[0]["pass_at_k"] is not None
    assert set(rows[0]["eval_loss_by_dataset"]) == set(demo_run.DATASET_OFFSETS)

    shown = run_cli("eval", "show", "--run", RUN, "--checkpoint", "checkpoint-1200", "--prompt", "0",
                    "--config", str(demo_config))
    assert shown.returncode == 0 and "## prompt 0 (greedy" in shown.stdout


def test_eval_of_the_demo_run_reuses_its_answers_and_refuses_to_generate(demo_config: Path):
    again = run_cli("eval", "run", "--run", RUN, "--samples", "2", "--json", "--config", str(demo_config))
    assert again.returncode == 0, again.stderr
    assert {c["state"] for c in json.loads(again.stdout)["checkpoints"]} == {"reused"}

    other = run_cli("eval", "run", "--run", RUN, "--samples", "3", "--config", str(demo_config))
    assert other.returncode == 1 and other.stderr.count("\n") == 1
    assert f"{RUN} is demo data (no model was trained)" in other.stderr
    assert not (demo_config.parent / "runs" / RUN / "evals" / "demo_prompts" / evals.GENERATE_LOG).exists()


def test_eval_without_torch_says_what_to_install_before_starting(small_ws: Path):
    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z")
    done = subprocess.run([sys.executable, "-c", NO_TORCH, "eval", "run", "--run", run_dir.name, "--config", str(small_ws)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == ("zelda-tui: error: generating eval answers needs the [train] extra (torch not installed): "
                           "pip install -e '.[train]'\n")
    assert not (evals.eval_dir(run_dir, "demo_prompts") / evals.GENERATE_LOG).exists()  # no generator was started
