"""The `x` export key of the Runs and Leaderboard screens, through Pilot at 80x24, on a real run:
the trainer tests' tiny DeepSeek-V2 trained by the real CLI, exported by the real export program
(merged only: seconds on CPU). Eval results are scored by the real services from answer files
(tests/evals_seed.py), so the Leaderboard has rows for the run."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from textual.widgets import DataTable, Static  # noqa: E402

from tests.conftest import run_cli  # noqa: E402
from tests.evals_seed import ANSWERS, seed_results  # noqa: E402
from tests.export.conftest import TRAIN_EXTRA  # noqa: E402
from tests.trainer.conftest import completed_run, make_workspace, short_records, wait_for  # noqa: E402
from tests.trainer.tiny import build_tiny_model  # noqa: E402
from zelda_tui.backends import export_runner as layout  # noqa: E402
from zelda_tui.screens.leaderboard import LeaderboardScreen  # noqa: E402
from zelda_tui.screens.runs import RunsScreen  # noqa: E402
from zelda_tui.services import build_services  # noqa: E402
from zelda_tui.widgets.export_dialog import ExportDialog  # noqa: E402

from .pilot_util import settle  # noqa: E402

SIZE = (80, 24)


def train(root: Path, model: Path) -> tuple[Path, Path]:
    """(config, run dir) of a completed 2-step run (checkpoint-2 and final adapters)."""
    cfg = make_workspace(root, model, max_steps=2, every=2)
    cfg.write_text(cfg.read_text() + TRAIN_EXTRA)
    return cfg, completed_run(cfg)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    texts = [r["instruction"] + "\n" + r.get("input", "") + "\n" + r["output"]
             for r in short_records("asm_gold_asar_pass_20260102", 120) + short_records("vultr_gold_full", 80)]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-deepseek-v2", texts)


@pytest.fixture
def trained(tmp_path: Path, tiny: Path) -> tuple[Path, Path]:
    return train(tmp_path / "ws", tiny)


def notes(app, title: str) -> list[str]:
    return [n.message for n in app.notes if n.title == title]


def failures(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app.notes if n.severity == "error"]


async def until(pilot, predicate, timeout: float = 120.0, seen=None) -> None:
    """Wait for `predicate` while the app runs (an export is a child process: seconds, not frames);
    `seen` is called on every turn (to catch what the screen shows meanwhile)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not reached in time; messages: {pilot.app.notes}"
        if seen is not None:
            seen()
        await pilot.pause()
        await asyncio.sleep(0.05)


async def test_runs_x_exports_the_final_adapters_escape_starts_nothing_quit_cancels(app_for, trained):
    cfg, run_dir = trained
    out = layout.export_dir(run_dir, "final")
    app = app_for(cfg)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.selected == run_dir.name

        await pilot.press("x")  # completed, no eval scores: its final adapters
        await until(pilot, lambda: isinstance(app.screen, ExportDialog))
        dialog = app.screen
        assert dialog.query_one("#export-checkpoint").value == "final"
        assert dialog.query_one("#export-gguf").value == ""
        await pilot.press("escape")  # the safe answer
        await settle(pilot)
        assert app.screen is screen
        assert not (run_dir / layout.EXPORT_DIR).exists() and not screen.exporting

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog))
        app.screen.query_one("#export-gguf").value = "q3_x"  # not a GGUF type: said so, the dialog stays
        await pilot.click("#export-go")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog)
        assert "unknown GGUF type 'q3_x' (known: f16, bf16, q8_0" in str(app.screen.query_one("#export-error", Static).render())
        app.screen.query_one("#export-gguf").value = ""
        # a button ignores a second press while its 0.2 s press effect shows (a double click is one press)
        await until(pilot, lambda: not app.screen.query_one("#export-go").has_class("-active"))
        await pilot.click("#export-go")
        summary = screen.query_one("#runs-summary", Static)
        shown: list[str] = []  # the summary's second line while it runs
        await until(pilot, lambda: screen.exporting or failures(app), seen=lambda: shown.append(str(summary.render())))
        assert not failures(app)

        await pilot.press("x")  # the same checkpoint again while it runs: said so, nothing started
        await until(pilot, lambda: any("is being exported" in n.message for n in app.notes) or not screen.exporting)
        assert any(f"{run_dir.name} final is being exported: " in n.message for n in app.notes)
        assert app.screen is screen

        await until(pilot, lambda: notes(app, f"Exported {run_dir.name}") or failures(app),
                    seen=lambda: shown.append(str(summary.render())))
        assert not failures(app)
        assert any("\n⇩ exporting final: " in text for text in shown)
        assert "exporting" not in str(summary.render())

        # quitting while an export runs terminates the export program: nothing left as if exported
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog))
        app.screen.query_one("#export-checkpoint").value = "2"
        await pilot.click("#export-go")
        await until(pilot, lambda: screen.exporting or failures(app))
        await pilot.press("q")
    assert screen._export_cancel.is_set()
    wait_for(lambda: not any(t.name.startswith("child-") for t in threading.enumerate()), timeout=60)
    assert not (layout.export_dir(run_dir, "checkpoint-2") / layout.MERGED).exists()
    assert not (layout.read_record(run_dir, "checkpoint-2") or {}).get("merged")

    done = notes(app, f"Exported {run_dir.name}")[0]
    assert done.startswith(f"final of {run_dir.name} → {out}\nmerged: verified, logits max diff ")
    record = json.loads((out / layout.RECORD).read_text())
    merged = record["merged"]
    assert merged["ok"] and f"max diff {merged['max_abs_diff']} vs base + adapter (tolerance {merged['tolerance']})" in done
    assert (out / layout.MERGED / "config.json").is_file() and record["gguf"] == {}


async def test_leaderboard_x_exports_the_selected_checkpoint_and_marks_it(app_for, trained):
    cfg, run_dir = trained
    services = build_services(cfg)
    try:  # checkpoint-2 and the base model scored
        seed_results(services, run_dir, answers={"base": ANSWERS["base"], "checkpoint-2": ANSWERS["checkpoint-4"]})
    finally:
        services.close()
    app = app_for(cfg)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LeaderboardScreen)
        table = screen.query_one(DataTable)
        assert [r.checkpoint for r in screen.rows] == ["checkpoint-2", "base"]

        table.move_cursor(row=1)
        await pilot.press("x")  # the base row: nothing to export
        await pilot.pause()
        assert app.screen is screen
        assert any("the base model has no adapter to export" in n.message for n in app.notes)

        table.move_cursor(row=0)
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExportDialog)
        assert app.screen.query_one("#export-checkpoint").value == "checkpoint-2"
        await pilot.click("#export-go")
        await until(pilot, lambda: notes(app, f"Exported {run_dir.name}") or failures(app))
        assert not failures(app)
        await settle(pilot)
        assert str(table.get_cell_at((0, 2))).endswith("⇩")  # the ckpt column marks it
        detail = str(screen.query_one("#leaderboard-detail", Static).render())
        assert "⇩ exported: merged ✓" in detail

        await pilot.press("4")  # the run has eval scores now: the Runs screen offers its best checkpoint
        await settle(pilot)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog))
        assert app.screen.query_one("#export-checkpoint").value == "best"
        await pilot.press("escape")
        await pilot.pause()
    assert notes(app, f"Exported {run_dir.name}")[0].startswith(
        f"checkpoint-2 of {run_dir.name} → {layout.export_dir(run_dir, 'checkpoint-2')}\nmerged: verified")

    res = run_cli("leaderboard", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    rows = {r["checkpoint"]: r for r in json.loads(res.stdout)["rows"]}
    record = json.loads((layout.export_dir(run_dir, "checkpoint-2") / layout.RECORD).read_text())
    assert rows["checkpoint-2"]["exported"] == {
        "merged": {"ok": True, "max_abs_diff": record["merged"]["max_abs_diff"],
                   "tolerance": record["merged"]["tolerance"]}, "gguf": {}}
    assert rows["base"]["exported"] == {}
    text = run_cli("leaderboard", "--config", str(cfg))
    assert text.returncode == 0, text.stderr
    assert "checkpoint-2 ★ ▼ ⇩" in text.stdout or "checkpoint-2 ★ ⇩" in text.stdout, text.stdout
    assert f"  #1 {run_dir.name} checkpoint-2: merged ✓" in text.stdout
