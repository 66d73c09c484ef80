"""The demo workspace (`services.demo.init_demo`, what `zelda-tui demo init` writes) fills the
Runs screen, the Leaderboard, the sample viewer and compare, without torch or a GPU; `e`
without the trainer stack says what to install instead of opening the eval dialog."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static

from zelda_tui.screens.leaderboard import LeaderboardScreen
from zelda_tui.screens.runs import RunsScreen
from zelda_tui.screens.samples import CompareScreen, SampleViewer
from zelda_tui.services.demo import init_demo
from zelda_tui.widgets.eval_dialog import EvalDialog
from zelda_tui.widgets.log_view import LogView
from zelda_tui.widgets.loss_chart import LossChart

from .pilot_util import settle

SIZE = (100, 30)
RUN = "zelda-16b-v1-demo_20261124T180000Z"


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_demo(tmp_path_factory.mktemp("demo") / "ws")


async def wait_for(pilot, predicate, what: str) -> None:
    for _ in range(300):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_demo_runs_leaderboard_samples_and_compare_are_full(app_for, demo_config: Path):
    app = app_for(demo_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one(DataTable)
        assert [str(table.get_cell_at((0, c))) for c in range(3)] == [RUN, "local", "completed"]
        chart, log = screen.query_one(LossChart), screen.query_one(LogView)
        await wait_for(pilot, lambda: len(chart.series["eval"][0]) == 6 and len(log.lines) > 100, "chart and log")
        assert "demo data" in str(screen.query_one("#runs-summary", Static).render())

        await pilot.press("5")
        await settle(pilot)
        assert isinstance(app.screen, LeaderboardScreen)
        assert app.screen.query_one(DataTable).row_count == 4
        assert [row.checkpoint for row in app.screen.rows] == ["checkpoint-1200", "checkpoint-800", "checkpoint-400", "base"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SampleViewer) and app.screen.query_one("#samples-list", DataTable).row_count == 40
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("c", "down", "down", "down", "c")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)


async def test_evaluate_without_torch_says_what_to_install(app_for, demo_config: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without the [train] extra
    app = app_for(demo_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert not isinstance(app.screen, EvalDialog)
        messages = [Text.from_markup(n.message).plain if n.markup else n.message for n in app._notifications]  # as shown
        assert any("pip install -e '.[train]'" in m and "torch not installed" in m for m in messages), messages
