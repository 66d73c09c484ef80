"""The Mix screen never lets a locked mix drift, and `b` only builds a saved mix (issue 12, item 9)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from textual.widgets import DataTable, Input, Select, SelectionList, Static

from zelda_tui.core import config as config_mod
from zelda_tui.screens.mix import MixScreen, NewMixDialog
from zelda_tui.widgets.confirm import ConfirmDialog

from .pilot_util import settle

SIZE = (100, 30)


def lock(cfg: Path) -> None:
    cfg.write_text(cfg.read_text().replace("seed = 7", 'seed = 7\ndescription = "LOCKED: what v1 trained on"'))


def status(screen) -> str:
    return str(screen.query_one("#mix-status", Static).render())


async def open_mix(pilot) -> MixScreen:
    await pilot.press("2")
    await settle(pilot)
    assert isinstance(pilot.app.screen, MixScreen)
    return pilot.app.screen


async def test_locked_mix_is_read_only_and_saved_as_a_new_mix(small_ws: Path, app_for):
    lock(small_ws)
    before = small_ws.read_bytes()
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_mix(pilot)
        assert "LOCKED read-only" in status(screen)
        assert screen.query_one(SelectionList).disabled
        assert all(i.disabled for i in screen.query(".param").results(Input))

        screen.query_one(DataTable).focus()
        await pilot.press("ctrl+s")  # never overwrites a locked mix
        await pilot.pause()
        assert small_ws.read_bytes() == before

        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, NewMixDialog)
        await pilot.press(*"../x", "enter")  # a name that would escape mixes/: refused, nothing saved
        await pilot.pause()
        assert isinstance(app.screen, MixScreen) and small_ws.read_bytes() == before
        assert any("contains a path separator" in n.message for n in app._notifications)

        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"small_v2", "enter")
        await settle(pilot)
        assert screen.mix_name == "small_v2" and screen.query_one("#mix-select", Select).value == "small_v2"
        assert not screen.query_one(SelectionList).disabled  # the copy is editable
        screen.query_one("#mix-eval", Input).value = "0.25"
        await pilot.pause()
        screen.query_one(DataTable).focus()
        await pilot.press("ctrl+s")
        await pilot.pause()

    saved = config_mod.load(small_ws)
    assert saved.mix("small") == config_mod.load(small_ws).mix("small")
    assert (saved.mix("small").eval_fraction, saved.mix("small").locked) == (0.1, True)
    assert (saved.mix("small_v2").eval_fraction, saved.mix("small_v2").locked) == (0.25, False)
    assert saved.mix("small_v2").datasets == saved.mix("small").datasets
    assert small_ws.read_text().startswith(before.decode())  # the locked table untouched, the copy appended


async def test_build_of_unsaved_edits_asks_to_save_first_and_defaults_to_no(small_ws: Path, app_for):
    app = app_for(small_ws)
    bundle = small_ws.parent / "mixes" / "small"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_mix(pilot)
        screen.query_one(SelectionList).deselect("gamma")
        screen.query_one("#mix-eval", Input).value = "0.25"
        await pilot.pause()
        assert "b builds the saved mix" in status(screen)
        screen.query_one(DataTable).focus()

        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # the reflexive Enter: No, nothing saved nor built
        await settle(pilot)
        assert isinstance(app.screen, MixScreen)
        assert not bundle.exists() and config_mod.load(small_ws).mix("small").eval_fraction == 0.1

        await pilot.press("b")
        await pilot.pause()
        await pilot.press("y")  # save, then build what was saved
        await settle(pilot)
        assert "built" in status(screen)

    meta = json.loads((bundle / "metadata.json").read_text())
    saved = config_mod.load(small_ws).mix("small")
    assert saved.datasets == ("alpha", "beta") and saved.eval_fraction == 0.25
    assert [d["name"] for d in meta["datasets"]] == ["alpha", "beta"] and meta["eval_fraction"] == 0.25


async def test_locked_mix_builds_what_config_says(small_ws: Path, app_for):
    lock(small_ws)
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_mix(pilot)
        screen.query_one(DataTable).focus()
        await pilot.press("b")
        await settle(pilot)
        assert "built" in status(screen)
    meta = json.loads((small_ws.parent / "mixes" / "small" / "metadata.json").read_text())
    assert [d["name"] for d in meta["datasets"]] == ["alpha", "beta", "gamma"] and meta["eval_fraction"] == 0.1


async def test_the_screen_checks_a_mix_with_the_rules_config_toml_gets(small_ws: Path, app_for):
    """One set of mix checks (core.config.mix_problem): what the screen says about a typed value is what
    loading config.toml with that value says after its file:line."""
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_mix(pilot)
        min_eval = screen.query_one("#mix-min-eval", Input)
        min_eval.value = "-1"
        await pilot.pause()
        assert "min_eval_samples must be >= 0, got -1" in status(screen)
        assert not screen.query_one(DataTable).row_count  # no numbers next to a bad value
        min_eval.value = "1"
        await pilot.pause()
        selection = screen.query_one(SelectionList)
        selection.deselect_all()
        await pilot.pause()
        assert "mix 'small' needs at least one dataset" in status(screen)
    text = small_ws.read_text()
    small_ws.write_text(re.sub(r"min_eval_samples = \d+", "min_eval_samples = -1", text, count=1))
    try:
        config_mod.load(small_ws)
    except config_mod.ConfigError as exc:
        assert str(exc).endswith("[mix.small.min_eval_samples]: min_eval_samples must be >= 0, got -1")
    else:
        raise AssertionError("config.toml with min_eval_samples = -1 loaded")
