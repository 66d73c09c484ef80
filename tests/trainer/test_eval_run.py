"""The eval end to end on the tiny model: the real CLI trains two checkpoints, then `eval run`
starts the real generator (base + each adapter, greedy + sampled), validates every answer with
Asar (or its pre-check), scores and stores; `leaderboard` ranks. The tiny model's answers are
noise: what is under test is the pipeline, the storage, resuming and the ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.core import eval_worker, evals, runs
from zelda_tui.core.store import Store
from zelda_tui.core.train_config import load_run_config

from .conftest import completed_run, make_workspace, wait_for

TOKENS = "6"  # tiny answers keep a CPU eval at a few seconds


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model: Path) -> tuple[Path, Path]:
    """(config, run dir) of a completed 4-step run with checkpoints at steps 2 and 4."""
    cfg = make_workspace(tmp_path_factory.mktemp("eval") / "ws", tiny_model, max_steps=4, every=2)
    return cfg, completed_run(cfg)


def prompt_file(path: Path, n: int = 3, extra_lines: list[str] | None = None) -> Path:
    """The first n prompts of the shipped held-out set, plus one without a reference."""
    lines = evals.SHIPPED_PROMPTS.read_text(encoding="utf-8").splitlines()[:n]
    lines.append(json.dumps({"instruction": "Explain what `SEP #$20` does.", "category": "asar_syntax"}))
    path.write_text("\n".join(lines + (extra_lines or [])) + "\n", encoding="utf-8")
    return path


def eval_cli(cfg: Path, run: str, prompts: Path, *extra: str):
    return run_cli("eval", "run", "--run", run, "--prompts", str(prompts), "--max-new-tokens", TOKENS,
                   "--batch-size", "2", "--json", "--config", str(cfg), *extra)


def test_eval_run_scores_base_and_checkpoints_and_resumes(trained, tmp_path: Path):
    cfg, run_dir = trained
    prompts = prompt_file(tmp_path / "held_out.jsonl")
    res = eval_cli(cfg, run_dir.name, prompts, "--samples", "2")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["prompt_set"] == "held_out" and report["prompts"] == 4 and report["problems"] == []
    assert [(c["checkpoint"], c["step"], c["state"]) for c in report["checkpoints"]] == [
        ("base", 0, "generated"), ("checkpoint-2", 2, "generated"), ("checkpoint-4", 4, "generated")]

    # one row per (run, checkpoint, prompt set, prompt, sample), every answer with a verdict
    store = Store(cfg.parent / "state.sqlite")
    try:
        for ckpt in ("base", "checkpoint-2", "checkpoint-4"):
            rows = store.eval_rows(run_dir.name, ckpt, "held_out")
            assert [(r["prompt_idx"], r["sample"]) for r in rows] == [(i, s) for i in range(4) for s in range(3)]
            for r in rows:
                assert r["verdict"] in evals.VERDICTS and r["checker"] in ("asar", "precheck")
                assert (r["match"] is None) == (r["prompt_idx"] == 3)  # the last prompt has no reference
            summary = store.eval_summary(run_dir.name, ckpt, "held_out")
            assert summary["samples"] == 2 and summary["summary"]["prompts"] == 4
            assert summary["summary"]["pass_at_k"] is not None
    finally:
        store.close()
    header, answers = evals.read_answers(evals.answers_path(run_dir, "held_out", "checkpoint-2"))
    assert header["model"] == load_run_config(run_dir).model.base and header["samples"] == 2
    assert header["adapter"].startswith("adapter_model.safetensors:") and header["expected"] == 12
    assert len(answers) == 12 and all(a["tokens"] <= int(TOKENS) for a in answers)

    board = json.loads(run_cli("leaderboard", "--json", "--config", str(cfg)).stdout)
    assert board["prompt_set"] == "held_out"
    assert sorted(r["checkpoint"] for r in board["rows"]) == ["base", "checkpoint-2", "checkpoint-4"]
    assert sorted(r["rank"] for r in board["rows"]) == [1, 2, 3]
    by_ckpt = {r["checkpoint"]: r for r in board["rows"]}
    assert by_ckpt["base"]["is_base"] and by_ckpt["base"]["eval_loss"] is None
    for ckpt in ("checkpoint-2", "checkpoint-4"):
        assert by_ckpt[ckpt]["eval_loss"] is not None
        assert set(by_ckpt[ckpt]["eval_loss_by_dataset"]) == {"gold", "oos"}
    table = run_cli("leaderboard", "--sort", "eval_loss", "--config", str(cfg))
    assert table.returncode == 0 and "(base) tiny-deepseek-v2" in table.stdout and "eval loss per dataset" in table.stdout

    # a second run of the same eval does nothing: no generator, no re-validation
    edir = evals.eval_dir(run_dir, "held_out")
    mtimes = {p.name: p.stat().st_mtime_ns for p in edir.iterdir()}
    again = eval_cli(cfg, run_dir.name, prompts, "--samples", "2")
    assert again.returncode == 0, again.stderr
    assert [c["state"] for c in json.loads(again.stdout)["checkpoints"]] == ["reused"] * 3
    assert {p.name: p.stat().st_mtime_ns for p in edir.iterdir()} == mtimes

    # an interrupted eval (one answers file missing) generates only what is missing
    evals.answers_path(run_dir, "held_out", "checkpoint-2").unlink()
    resumed = eval_cli(cfg, run_dir.name, prompts, "--samples", "2")
    assert [c["state"] for c in json.loads(resumed.stdout)["checkpoints"]] == ["reused", "generated", "reused"]
    assert evals.answers_path(run_dir, "held_out", "base").stat().st_mtime_ns == mtimes["base.jsonl"]

    # the viewer's data, headless
    show = run_cli("eval", "show", "--run", run_dir.name, "--checkpoint", "checkpoint-4", "--prompt", "0",
                   "--config", str(cfg))
    assert show.returncode == 0 and "## prompt 0 (greedy" in show.stdout and "## prompt 0 (sample 2" in show.stdout


def test_malformed_prompt_lines_are_named_and_the_rest_is_scored(trained, tmp_path: Path):
    cfg, run_dir = trained
    prompts = prompt_file(tmp_path / "broken.jsonl", n=2, extra_lines=['{"instruction": "cut off', '{"input": "no instruction"}'])
    res = eval_cli(cfg, run_dir.name, prompts, "--checkpoint", "base")
    assert res.returncode == 1  # the file has problems ...
    assert f"{prompts}:4: not JSON" in res.stderr and f"{prompts}:5: field `instruction` missing" in res.stderr
    report = json.loads(res.stdout)  # ... and the good prompts are scored all the same
    assert report["prompts"] == 3 and len(report["problems"]) == 2
    assert [(c["checkpoint"], c["state"]) for c in report["checkpoints"]] == [("base", "generated")]
    store = Store(cfg.parent / "state.sqlite")
    try:
        assert [r["prompt_idx"] for r in store.eval_rows(run_dir.name, "base", "broken")] == [0, 1, 2]
    finally:
        store.close()


def test_a_broken_checkpoint_fails_alone(trained, tmp_path: Path):
    cfg, run_dir = trained
    prompts = prompt_file(tmp_path / "one.jsonl", n=1)
    broken = run_dir / runs.CHECKPOINTS / "checkpoint-2" / "adapter_model.safetensors"
    saved = broken.read_bytes()
    broken.write_bytes(b"not a safetensors file")
    try:
        res = eval_cli(cfg, run_dir.name, prompts, "--checkpoint", "2,4")
    finally:
        broken.write_bytes(saved)
    assert res.returncode == 1
    report = json.loads(res.stdout)
    states = {c["checkpoint"]: c for c in report["checkpoints"]}
    assert states["checkpoint-2"]["state"] == "failed" and states["checkpoint-2"]["message"]
    assert "\n" not in states["checkpoint-2"]["message"]
    assert states["checkpoint-4"]["state"] == "generated" and states["checkpoint-4"]["summary"]["prompts"] == 2
    assert not evals.answers_path(run_dir, "one", "checkpoint-2").exists()
    assert "Traceback" in (evals.eval_dir(run_dir, "one") / evals.GENERATE_LOG).read_text()


async def test_evaluate_from_the_leaderboard(trained, tmp_path: Path):
    """Keyboard only: `e`, the dialog, the generator in a worker, progress, the new rows."""
    import asyncio
    import time

    from textual.widgets import DataTable, Input, Static

    from tests.tui.pilot_util import settle
    from zelda_tui.app import ZeldaApp
    from zelda_tui.services import build_services

    cfg, run_dir = trained
    prompts = prompt_file(tmp_path / "from_tui.jsonl", n=1)
    services = build_services(cfg)
    app = ZeldaApp(services)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            await pilot.press("e")
            await settle(pilot)
            dialog = app.screen
            assert dialog.__class__.__name__ == "EvalDialog"
            dialog.query_one("#eval-checkpoint", Input).value = "base,4"
            dialog.query_one("#eval-prompts", Input).value = str(prompts)
            dialog.query_one("#eval-max-tokens", Input).value = TOKENS
            await pilot.press("enter")  # the focused Evaluate button
            await pilot.pause()
            board = app.screen
            seen_progress = False
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                await pilot.pause()
                text = str(board.query_one("#leaderboard-status", Static).render())
                seen_progress |= "answers" in text
                if board.evaluating is None:
                    break
            await settle(pilot)
            assert board.evaluating is None and board.prompt_set == "from_tui"
            table = board.query_one(DataTable)
            assert sorted(str(table.get_cell(r.key, "ckpt")) for r in table.ordered_rows) == ["4★▼", "base"]  # the step, best of its run both ways
            assert any("2 of 2 checkpoints scored on 2 prompts" in n.message for n in app._notifications)
            assert not [n for n in app._notifications if n.severity == "error"]
            assert seen_progress  # the status line followed the generator
    finally:
        services.close()


def test_a_local_run_evaluates_its_checkpoints_after_training(tmp_path: Path, tiny_model: Path):
    """[eval] during_training on a run here: the trainer starts the generator itself (detached, like on
    a box); once training ends every checkpoint is evaluated and the leaderboard scores it."""
    prompts = prompt_file(tmp_path / "held_out.jsonl")
    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=4, every=2)
    with open(cfg, "a") as fh:
        fh.write(f'\n[eval]\nduring_training = "after"\nprompts = "{prompts}"\nmax_new_tokens = {TOKENS}\n')
    res = run_cli("train", "start", "--phase", "0", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    run_dir = Path(json.loads(res.stdout)["run_dir"])
    assert load_run_config(run_dir).eval.prompt_set == "held_out"
    edir = evals.eval_dir(run_dir, "held_out")
    worker = wait_for(lambda: (w := eval_worker.read_worker(edir)) and w.state in ("finished", "failed") and w)
    assert worker.state == "finished", (edir / evals.GENERATE_LOG).read_text()[-2000:]
    board = json.loads(run_cli("leaderboard", "--json", "--config", str(cfg)).stdout)
    assert {r["checkpoint"] for r in board["rows"] if r["run"] == run_dir.name} == {"base", "checkpoint-2", "checkpoint-4"}
    assert "held_out: eval finished" in run_cli("train", "status", run_dir.name, "--config", str(cfg)).stdout


def test_a_full_disk_fails_each_checkpoint_with_one_line_and_loses_nothing(trained, tmp_path: Path):
    """The generator program (the same one that runs on a box) on a full disk: every checkpoint fails
    with the file and the OS's reason, nothing half-written stays, and with room again it goes through.
    The disk: a small tmpfs over the run's evals/ in a private mount namespace (gone with the process)."""
    import subprocess
    import sys

    cfg, run_dir = trained
    evals_root = run_dir / evals.EVALS_DIR
    evals_root.mkdir(exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {evals_root}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    prompts = prompt_file(tmp_path / "full.jsonl", n=2)
    text = evals.prompts_jsonl(evals.parse_prompts(prompts).prompts)
    edir = evals_root / "full"
    script = (f"mount -t tmpfs -o size=64k tmpfs {evals_root} && mkdir -p {edir} && "
              f"cat > {edir / evals.PROMPTS_FILE} && touch {edir / eval_worker.WORKER_LOCK} && "
              f"dd if=/dev/zero of={evals_root / 'filler'} bs=4k 2>/dev/null; "
              f"exec {sys.executable} -m zelda_tui.backends.trainer.generate {run_dir} --prompt-set full "
              f"--checkpoints base,checkpoint-2 --max-new-tokens {TOKENS}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], input=text, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    errors = {e["checkpoint"]: e["message"] for e in events if e["event"] == "error"}
    assert set(errors) == {"base", "checkpoint-2"}, res.stderr[-3000:]
    for name, message in errors.items():
        assert message == f"cannot write {edir / (name + '.jsonl')} (No space left on device)"
    assert not (edir / "base.jsonl").exists()  # the tmpfs is gone: nothing reached the real disk
    res = eval_cli(cfg, run_dir.name, prompts, "--checkpoint", "base")  # with room again, the same eval goes through
    assert res.returncode == 0, res.stderr
    assert [c["state"] for c in json.loads(res.stdout)["checkpoints"]] == ["generated"]
