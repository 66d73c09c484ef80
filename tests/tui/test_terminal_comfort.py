"""The TUI at 80x24 as over SSH: columns and footer fit, Escape leaves a field, messages read as
written and stay in a history, mouse capture and theme settings, copying a run's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets._footer import FooterKey

from tests.evals_seed import make_run, seed_results
from zelda_tui.core import config as config_mod
from zelda_tui.core.errors import ConfigError
from zelda_tui.screens.inventory import DatasetDetailScreen, InventoryScreen
from zelda_tui.screens.mix import MixScreen
from zelda_tui.screens.offers import OffersScreen
from zelda_tui.widgets.keys_help import KeysScreen
from zelda_tui.widgets.notifications import NotificationsScreen

from .pilot_util import columns_fit, screen_text, settle

SIZE = (80, 24)
PIP_ADVICE = "install the [train] extra (pip install -e '.[train]')"


async def test_footer_fits_at_80_columns_and_question_mark_lists_binding_ids(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in "12345":
            await pilot.press(key)
            await settle(pilot)
            keys = list(app.screen.query_one(Footer).query(FooterKey))
            assert keys and all(k.region.right <= SIZE[0] for k in keys), app.screen.title
            assert any(k.action == "app.toggle_help" or k.description == "Keys" for k in keys)
        await pilot.press("1")
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        ids = {binding_id for _, binding_id, _ in app.screen.bindings}
        assert {"inventory.rescan", "inventory.registry", "mode.mix", "app.quit", "app.messages", "app.mouse"} <= ids
        text = screen_text(app)
        assert "inventory.rescan" in text and "mode.offers" in text and "[keys]" in text
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, InventoryScreen)


async def test_escape_leaves_a_text_field_and_screen_keys_work_again(small_ws: Path, app_for, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("VULTR_API_KEY", raising=False)
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        await pilot.press("slash", "x")
        assert isinstance(app.focused, Input)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.focused, DataTable)
        await pilot.press("1")
        await settle(pilot)
        assert isinstance(app.screen, InventoryScreen)
        assert screen.query_one("#offers-filter", Input).value.endswith("x")  # typed, not searched: nothing lost

        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, MixScreen)
        app.screen.query_one("#mix-eval", Input).focus()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.focused, Input)
        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, OffersScreen)


async def test_messages_render_as_written_and_stay_in_the_history(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        app.screen.notify(PIP_ADVICE, title="Cannot evaluate here", severity="error", timeout=10)
        app.report_error(ValueError("bad [b]value[/b] in [mix.small]"), "save failed")
        for _ in range(3):
            await pilot.pause(0.1)
        toasts = " ".join(str(t.render()) for t in app.screen.query("Toast")).replace("\n", " ")
        assert PIP_ADVICE in toasts  # it showed " extra (pip install -e '.')": wrong advice
        assert "save failed: bad [b]value[/b] in [mix.small]" in toasts
        app.clear_notifications()  # the toasts are gone (as after 10 s); the history keeps them
        await pilot.pause()
        await pilot.press("N")
        await pilot.pause()
        assert isinstance(app.screen, NotificationsScreen)
        text = " ".join(screen_text(app).replace("│", " ").split())  # the wrapped lines as one
        assert PIP_ADVICE in text
        assert "error" in text and "Cannot evaluate here" in text and "save failed" in text
        assert [n.severity for n in app.screen.notes] == ["error", "error"]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, InventoryScreen)


async def test_mouse_setting_toggle_and_the_theme_saved_in_config(small_ws: Path, app_for):
    small_ws.write_text(small_ws.read_text() + "\n# terminal comfort\n[ui]\nmouse = false  # select text over SSH\n")
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.mouse_enabled is False
        await pilot.press("M")
        await pilot.pause()
        assert app.mouse_enabled is True and any("mouse capture on" in n.message for n in app.notes)
        app.theme = "nord"
        await pilot.pause()
    text = small_ws.read_text()
    assert "# select text over SSH" in text and "# the mix under test" in text  # comments kept
    assert config_mod.load(small_ws).ui == config_mod.UiSpec(mouse=False, theme="nord")
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "nord"


def test_ui_settings_are_checked_with_file_and_line(small_ws: Path):
    small_ws.write_text(small_ws.read_text() + '\n[ui]\nmouse = "no"\n')
    with pytest.raises(ConfigError, match=r"config.toml:\d+.*mouse"):
        config_mod.load(small_ws)


async def test_copy_a_run_name_on_runs_and_leaderboard(small_ws: Path, app_for):
    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z", losses={2: 0.5, 4: 1.0})
    app = app_for(small_ws)
    seed_results(app.services, run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == "tiny_20260101T000000Z"
        await pilot.press("Y")
        await pilot.pause()
        assert Path(app.clipboard) == run_dir
        await pilot.press("5")
        await settle(pilot)
        app.clipboard_before = app.clipboard
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == "tiny_20260101T000000Z"
        assert any(n.title == "Copied" for n in app.notes)


async def test_inventory_and_qa_report_never_cut_numbers(demo_ws: Path, app_for):
    app = app_for(demo_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert columns_fit(table)
        report = app.screen.reports[0]
        over = f"{report.qa['length']['over_max']:,}"
        first_line = next(line for line in screen_text(app).splitlines() if line.strip().startswith(report.name))
        assert first_line.split()[-1] == over  # `> max len` in full (it showed "1" for 146)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DatasetDetailScreen)
        await pilot.press("end")
        await pilot.pause(0.3)
        text = screen_text(app)
        for bucket, count in report.qa["length"]["buckets"].items():
            if count:
                assert f"{count:,}" in text, (bucket, count)


async def test_leaderboard_runs_of_one_model_never_look_alike(small_ws: Path, app_for):
    names = ("zelda-16b-v1-demo-long-name_20260101T000000Z", "zelda-16b-v1-demo-long-name_20260102T000000Z")
    app = app_for(small_ws)
    for name in names:
        seed_results(app.services, make_run(small_ws.parent, name, losses={2: 0.5, 4: 1.0}))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert columns_fit(table)
        shown = {str(table.get_row_at(i)[1]) for i in range(table.row_count) if not app.screen.rows[i].is_base}
        assert len(shown) == 2 and all("0101T000000Z" in s or "0102T000000Z" in s for s in shown), shown


async def test_mix_preview_shows_no_numbers_while_an_input_is_invalid(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 4
        app.screen.query_one("#mix-eval", Input).value = "1.5"
        await pilot.pause()
        assert "between 0 and 1" in str(app.screen.query_one("#mix-status", Static).render())
        assert table.row_count == 0  # the counts of 0.02 no longer sit next to 1.5
        app.screen.query_one("#mix-eval", Input).value = "0.25"
        await pilot.pause()
        assert table.row_count == 4


async def test_sample_viewer_and_compare_footers_fit_at_80_columns(small_ws: Path, app_for):
    app = app_for(small_ws)
    seed_results(app.services, make_run(small_ws.parent, "tiny_20260101T000000Z", losses={2: 0.5, 4: 1.0}))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.__class__.__name__ == "SampleViewer"
        keys = list(app.screen.query_one(Footer).query(FooterKey))
        assert len(keys) >= 4 and all(k.region.right <= SIZE[0] for k in keys)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("c", "down", "c")
        await settle(pilot)
        assert app.screen.__class__.__name__ == "CompareScreen"
        keys = list(app.screen.query_one(Footer).query(FooterKey))
        assert len(keys) >= 6 and all(k.region.right <= SIZE[0] for k in keys)
