"""`R` on the Runs screen (#17.3): a lost remote run's recovery plan (the offer, $/h, the estimated total,
the budget left, the checkpoint) in a confirm whose default is No; yes rents the offer (the local replay
of Vast's API, its new instance answering on a second real sshd) and goes on there, its progress in the
summary; the run's boxes are listed under the summary. A refused plan is a notice with the numbers."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from tests.backends.replay_server import ReplayServer
from tests.remote.sshd import Sshd
from tests.remote.test_recover_rent import (OFFER, NEW, boxes, forget_box_a, lost_run, stop_trainers,  # noqa: F401
                                            vast_key)
from tests.remote.test_run_watch import RUN, trainer  # noqa: F401
from zelda_tui.widgets.confirm import ConfirmDialog

from .pilot_util import settle
from .test_runs_screen import SIZE, select, wait_for


def text_of(app) -> str:
    return " ".join(str(w.render()) for w in app.screen.query(Static))


async def open_runs(pilot, app) -> None:
    await settle(pilot)
    await pilot.press("4")  # the lost run's mirror keeps trying box A: wait for the list, not for idle
    await wait_for(pilot, lambda: getattr(app.screen, "ready", False), "the runs list")
    await select(pilot, app.screen, RUN)


async def test_r_shows_the_plan_defaults_to_no_then_recovers_on_the_rented_box(boxes: tuple[Sshd, Sshd],  # noqa: F811
                                                                                small_ws: Path, tmp_path: Path,
                                                                                app_for, trainer: int):  # noqa: F811
    a, b = boxes
    with ReplayServer() as server:
        cfg = lost_run(small_ws, a, b, server, trainer, "max_total_usd = 500.0")
        forget_box_a(tmp_path)
        app = app_for(cfg)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await open_runs(pilot, app)
                screen = app.screen
                summary = screen.query_one("#runs-summary", Static)
                assert "R recovers it" in str(summary.render())
                assert not screen.query_one("#runs-boxes", Static).display  # never moved: no boxes list

                await pilot.press("R")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the recovery plan", timeout=30)
                shown = text_of(app)
                assert f"Recover {RUN}?" in shown and "resumes from checkpoints/checkpoint-3" in shown
                assert f"on vast:{OFFER}: 1 x A100 SXM4" in shown and "$0.695/h" in shown
                assert "estimated " in shown and " h, $" in shown and "of $500.00 left" in shown, shown
                await pilot.press("enter")  # the default is No: nothing rented
                await wait_for(pilot, lambda: app.screen is screen, "the dialog closed")
                assert not server.received("PUT")

                await pilot.press("R")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the plan again", timeout=30)
                await pilot.press("y")
                await wait_for(pilot, lambda: "recovering:" in str(summary.render()), "the progress in the summary",
                               timeout=30)
                await wait_for(pilot, lambda: any(n.title == "Recovered" for n in app.notes), "the recovery", 180)
                note = next(n for n in app.notes if n.title == "Recovered")
                assert note.message.startswith(f"recovered {RUN} on root@127.0.0.1:{b.port} (vast:{NEW})")
                assert len(server.received("PUT")) == 1
                table = screen.query_one(DataTable)
                await wait_for(pilot, lambda: str(table.get_cell(RUN, "host")).startswith("root@127.0.0.1"),
                               "the run on box B")
                listed = screen.query_one("#runs-boxes", Static)
                await wait_for(pilot, lambda: listed.display, "the boxes of the run")
                lines = str(listed.render()).splitlines()
                assert lines[0].strip().startswith("gpu-box · started here · ") and "$0.70 (vast:7777001)" in lines[0]
                assert lines[1].startswith(f"→ root@127.0.0.1:{b.port} · from checkpoint-3 · ")
                assert f"(vast:{NEW})" in lines[1] and "so far" in lines[1], lines
                assert not [n for n in app.notes if n.severity == "error"], [n.message for n in app.notes]
        finally:
            stop_trainers(tmp_path)


async def test_r_on_a_plan_past_the_budget_is_a_notice_with_the_numbers(boxes: tuple[Sshd, Sshd],  # noqa: F811
                                                                        small_ws: Path, app_for,
                                                                        trainer: int):  # noqa: F811
    a, b = boxes
    with ReplayServer() as server:
        cfg = lost_run(small_ws, a, b, server, trainer, "max_total_usd = 0.5")  # the lost box spent $0.70
        app = app_for(cfg)
        async with app.run_test(size=SIZE) as pilot:
            await open_runs(pilot, app)
            await pilot.press("R")
            await wait_for(pilot, lambda: any("stays lost" in n.title for n in app.notes), "the refusal", 30)
            note = next(n for n in app.notes if "stays lost" in n.title)
            assert note.severity == "error" and note.title == f"{RUN} stays lost"
            assert "no budget left: $0.70 spent of budget.max_total_usd $0.50" in note.message
            assert f"vast:{OFFER}" in note.message and "$0.695/h" in note.message
            assert not isinstance(app.screen, ConfirmDialog) and not server.received("PUT")
