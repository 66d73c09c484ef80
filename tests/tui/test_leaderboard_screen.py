"""The Leaderboard screen through Pilot at 80x24, over results scored by the real services.

The workspace's SQLite is filled by `services.evals.ingest` from answer files written as the
generator writes them (tests/evals_seed.py): real validation (Asar or its pre-check), real
scoring, real storage. Generation itself is tested on the tiny model in tests/trainer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from tests.evals_seed import BAD_SYNTAX, GOOD_WORD, make_run, seed_results
from zelda_tui.screens.leaderboard import LeaderboardScreen
from zelda_tui.screens.samples import FAIL_STYLE, CompareScreen, SampleView, SampleViewer
from zelda_tui.services import build_services
from zelda_tui.widgets.eval_dialog import EvalDialog

from .pilot_util import settle

SIZE = (80, 24)
RUN = "tiny_20260101T000000Z"


@pytest.fixture
def scored_ws(small_ws: Path) -> Path:
    """One run: base, checkpoint-2 (lower eval loss) and checkpoint-4 (assembles more)."""
    run_dir = make_run(small_ws.parent, RUN, losses={2: 0.5, 4: 1.0})
    services = build_services(small_ws)
    try:
        seed_results(services, run_dir)
    finally:
        services.close()
    return small_ws


def column(table: DataTable, key: str) -> list[str]:
    return [str(table.get_cell(row.key, key)) for row in table.ordered_rows]


def text(widget: Static) -> str:
    return str(widget.render())


def status(app) -> str:
    return text(app.screen.query_one("#leaderboard-status", Static))


async def open_board(pilot) -> DataTable:
    await pilot.press("5")
    await settle(pilot)
    assert isinstance(pilot.app.screen, LeaderboardScreen)
    return pilot.app.screen.query_one(DataTable)


async def test_checkpoints_ranked_with_the_base_row_and_sortable(app_for, scored_ws: Path):
    app = app_for(scored_ws)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_board(pilot)
        assert column(table, "ckpt") == ["4★", "2▼", "base"]  # the step of each checkpoint-N, its run's best marked
        assert column(table, "asm") == ["75.0%", "25.0%", "0.0%"]
        assert column(table, "rank") == ["1", "2", "3"]
        assert column(table, "run")[2] == "tiny-deepseek"  # the base row names its model
        assert column(table, "loss") == ["1.000", "0.500", "—"]
        assert "prompt set demo_prompts" in status(app) and "sort assembles ↓" in status(app)
        detail = text(app.screen.query_one("#leaderboard-detail", Static))
        assert "checkpoint-4" in detail and "unresolved label 25.0%" in detail and "match 3/3" in detail
        assert "eval loss gold 0.875, oos 1.125" in detail

        for _ in range(4):  # assembles -> pass@1 -> pass@k -> match -> eval loss
            await pilot.press("s")
        await settle(pilot)
        assert "sort eval loss ↑" in status(app)
        assert column(table, "ckpt") == ["2▼", "4★", "base"]

        # a click on a column header ranks by that column
        x = sum(c.get_render_width(table) for c in list(table.columns.values())[:3]) + 2
        await pilot.click(DataTable, offset=(x, 0))  # the "asm" header
        await settle(pilot)
        assert "sort assembles ↓" in status(app)
        assert column(table, "ckpt") == ["4★", "2▼", "base"]


async def test_sample_viewer_shows_verdict_and_highlights_the_failing_line(app_for, scored_ws: Path):
    app = app_for(scored_ws)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_board(pilot)
        table.move_cursor(row=1)  # checkpoint-2
        await pilot.press("enter")
        await settle(pilot)
        viewer = app.screen
        assert isinstance(viewer, SampleViewer) and "checkpoint-2" in viewer.title
        prompts = viewer.query_one("#samples-list", DataTable)
        assert column(prompts, "verdict") == ["✓ assembles", "✗ syntax error", "? unresolved label", "✗ syntax error"]

        await pilot.press("down")  # prompt 1: FOOBAR on line 2
        await pilot.pause()
        view = viewer.query_one(SampleView)
        verdict = text(view.query_one(".verdict", Static))
        assert verdict.startswith("✗ syntax_error (") and "line 2" in verdict and "differs from the reference" in verdict
        assert "Unknown command" in text(view.query_one(".errors", Static))
        code = view.query_one(".code", Static).content
        lines = code.plain.split("\n")
        assert lines[1] == "▶2 │     FOOBAR $12" and lines[0] == " 1 │     LDA #$00"
        highlighted = {code.plain[s.start:s.end] for s in code.spans if str(s.style) == FAIL_STYLE}
        assert highlighted == {"    FOOBAR $12"}
        assert "Store $1234" in text(viewer.query_one("#samples-prompt-text", Static))

        await pilot.press("tab")  # sampled answer 1 of the same prompt
        await pilot.pause()
        assert "sample 1" in str(view.border_title)
        await pilot.press("a")  # the whole answer instead of the code
        await pilot.pause()
        assert str(view.border_title).startswith("answer")
        assert view.query_one(".code", Static).content.plain == BAD_SYNTAX  # sample 1 of prompt 1
        await pilot.press("a")  # then the reference
        await pilot.pause()
        assert str(view.border_title).startswith("reference")
        assert view.query_one(".code", Static).content.plain == GOOD_WORD
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen)


async def test_compare_two_checkpoints_on_the_same_prompt(app_for, scored_ws: Path):
    app = app_for(scored_ws)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_board(pilot)
        await pilot.press("c")  # mark checkpoint-4
        await pilot.pause()
        assert column(table, "rank")[0] == "◆1" and "compare checkpoint-4 with" in status(app)
        await pilot.press("down", "down", "c")  # ... against the base model
        await settle(pilot)
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        left, right = compare.query_one("#compare-left", SampleView), compare.query_one("#compare-right", SampleView)
        assert str(left.border_title).startswith("checkpoint-4") and str(right.border_title).startswith("base")

        def verdicts() -> tuple[str, str]:
            return (text(left.query_one(".verdict", Static)).split(" (")[0],
                    text(right.query_one(".verdict", Static)).split(" (")[0])

        assert verdicts() == ("✓ assembles", "∅ empty")
        assert "prompt 1/4" in text(compare.query_one("#compare-where", Static))
        await pilot.press("n")
        await pilot.pause()
        assert verdicts() == ("✓ assembles", "✗ syntax_error")
        assert "Store $1234" in text(compare.query_one("#compare-prompt-text", Static))
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen) and "◆" not in column(table, "rank")[0]


async def test_empty_leaderboard_says_how_to_fill_it(app_for, small_ws: Path):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await open_board(pilot)
        assert app.screen.has_class("-empty")
        assert "zelda-tui eval run --run RUN" in text(app.screen.query_one("#leaderboard-empty", Static))
        await pilot.press("e")  # nothing to evaluate: said so, no dialog
        await settle(pilot)
        assert not isinstance(app.screen, EvalDialog)
        assert any("no runs to evaluate" in n.message for n in app._notifications)


async def test_eval_dialog_defaults_to_the_shipped_prompt_set(app_for, scored_ws: Path):
    app = app_for(scored_ws)
    async with app.run_test(size=SIZE) as pilot:
        await open_board(pilot)
        await pilot.press("e")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, EvalDialog)
        assert dialog.query_one("#eval-prompts").value.endswith("eval_data/demo_prompts.jsonl")
        assert dialog.query_one("#eval-run").value == RUN
        dialog.query_one("#eval-samples").value = "-2"
        await pilot.click("#eval-go")
        await pilot.pause()
        assert isinstance(app.screen, EvalDialog)  # a bad number keeps the dialog open, with a reason
        assert "samples must be 0 or more" in text(dialog.query_one("#eval-error", Static))
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen) and app.screen.evaluating is None
