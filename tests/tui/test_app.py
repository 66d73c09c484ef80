"""The real TUI through Textual's Pilot at 80x24, over real temp workspaces."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable, Input, Markdown, SelectionList, Static

from zelda_tui.core import config as config_mod
from zelda_tui.screens.inventory import DatasetDetailScreen, InventoryScreen
from zelda_tui.screens.mix import MixScreen

from .pilot_util import settle

SIZE = (80, 24)


def cells(table: DataTable, column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def test_inventory_shows_datasets_and_detail(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, InventoryScreen)
        table = app.screen.query_one(DataTable)
        assert cells(table, 0) == ["alpha", "beta", "gamma"]
        assert cells(table, 1) == ["40", "12", "1"]
        summary = str(app.screen.query_one("#inventory-summary", Static).render())
        assert "3 datasets · 53 records · scanned · max len 64 tok" in summary
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DatasetDetailScreen)
        assert app.screen.report.name == "beta"
        assert "beta" in app.screen.query_one(Markdown).source
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, InventoryScreen)


async def test_rescan_picks_up_changes_and_reports_bad_lines(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        beta = small_ws.parent / "datasets" / "beta.jsonl"
        beta.write_text(beta.read_text() + "{broken\n")
        await pilot.press("r")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert cells(table, 3) == ["0", "1", "0"]  # parse errors column
        assert "scanned" in str(app.screen.query_one("#inventory-summary", Static).render())


async def test_missing_dataset_shown_not_crashing(small_ws: Path, app_for):
    (small_ws.parent / "datasets" / "gamma.jsonl").unlink()
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert cells(table, 1) == ["40", "12", "missing"]
        assert "gamma.jsonl: file not found" in str(app.screen.query_one("#inventory-summary", Static).render())


async def test_number_keys_switch_screens_and_help(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, title, text in (("3", "Offers", None), ("4", "Runs", None), ("5", "Leaderboard", "zelda-tui eval run")):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen.title == title
            if key == "3":  # the Offers screen is built: the offline catalog shows without any key
                assert app.screen.__class__.__name__ == "OffersScreen"
                await settle(pilot)
                assert app.screen.query_one(DataTable).row_count > 0
                assert "offers" in str(app.screen.query_one("#offers-status", Static).render())
                continue
            if text is None:  # the Runs screen is built: an empty workspace says how to start a run
                assert app.screen.__class__.__name__ == "RunsScreen"
                await settle(pilot)
                assert "zelda-tui train start" in str(app.screen.query_one("#runs-empty", Static).render())
                continue
            # the Leaderboard is built: an empty workspace says how to evaluate a run's checkpoints
            assert app.screen.__class__.__name__ == "LeaderboardScreen"
            await settle(pilot)
            assert text in str(app.screen.query_one("#leaderboard-empty", Static).render())
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, MixScreen)
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.screen, InventoryScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "KeysScreen"
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, InventoryScreen)


async def test_command_palette_offers_screens_and_actions(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Go to Mix" in titles and "Re-scan datasets" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"go to mix")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, MixScreen)


async def test_mix_preview_toggle_edit_build_and_save(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MixScreen)
        table = screen.query_one(DataTable)
        assert cells(table, 0) == ["alpha", "beta", "gamma", "total"]
        assert cells(table, 2)[-1] == "47" and cells(table, 3)[-1] == "6"

        # toggle gamma off: totals follow live
        selection = screen.query_one(SelectionList)
        selection.deselect("gamma")
        await pilot.pause()
        assert cells(table, 0) == ["alpha", "beta", "total"]
        assert cells(table, 2)[-1] == "47" and cells(table, 3)[-1] == "5"

        # a bad eval fraction is refused with a message, nothing built
        eval_input = screen.query_one("#mix-eval", Input)
        eval_input.value = "1.5"
        await pilot.pause()
        assert "between 0 and 1" in str(screen.query_one("#mix-status", Static).render())
        eval_input.value = "0.25"
        await pilot.pause()
        assert cells(table, 3)[-1] == str(round(40 * 0.25) + round(12 * 0.25))

        # build with the keyboard (focus off the inputs first): b builds the saved mix, so it asks to save the edits
        screen.query_one(DataTable).focus()
        await pilot.press("b")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "ConfirmDialog"
        await pilot.press("y")
        await settle(pilot)
        bundle = small_ws.parent / "mixes" / "small"
        meta = json.loads((bundle / "metadata.json").read_text())
        assert [d["name"] for d in meta["datasets"]] == ["alpha", "beta"]
        assert meta["eval_fraction"] == 0.25 and meta["total_eval"] == 13
        assert "built" in str(screen.query_one("#mix-status", Static).render())

        # building again asks before replacing; "n" keeps the bundle
        before = (bundle / "train.jsonl").read_bytes()
        await pilot.press("b")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "ConfirmDialog"
        await pilot.press("n")
        await settle(pilot)
        assert (bundle / "train.jsonl").read_bytes() == before

        # save to config.toml: comments kept, values changed
        await pilot.press("ctrl+s")
        await pilot.pause()
        text = small_ws.read_text()
        assert "# the mix under test" in text
        saved = config_mod.load(small_ws).mix("small")
        assert saved.datasets == ("alpha", "beta") and saved.eval_fraction == 0.25


async def test_keys_can_be_remapped_from_config(small_ws: Path, app_for):
    small_ws.write_text(small_ws.read_text() + '\n[keys]\n"mode.mix" = "f2"\n')
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        assert isinstance(app.screen, MixScreen)


async def test_cold_scan_of_demo_workspace_in_the_tui(demo_ws: Path, app_for):
    """A scan big enough to use worker processes, started from inside the running app."""
    app = app_for(demo_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app._notifications, [n.message for n in app._notifications]
        table = app.screen.query_one(DataTable)
        assert cells(table, 1) == ["28,707", "11,044", "19,303", "3,894", "211", "53"]
        assert "63,212 records · scanned" in str(app.screen.query_one("#inventory-summary", Static).render())


async def test_start_lists_running_instances_and_their_spend(small_ws: Path, app_for):
    import time

    from zelda_tui.core.store import Store

    store = Store(small_ws.parent / "state.sqlite")
    store.instance_add({"key": "vast:42", "provider": "vast", "instance_id": "42", "offer": "vast:7", "gpu_name": "A100 SXM4",
                        "num_gpus": 1, "dph_total": 2.0, "started": time.time() - 1800, "ended": None, "state": "running"})
    store.close()
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        notes = [n.message for n in app._notifications]
        assert any("1 tracked instance(s) still running, $1.00 so far" in m and "vast:42" in m for m in notes), notes
