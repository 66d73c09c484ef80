"""The Offers screen through Pilot at 80x24: the offline catalog without keys, live Vast offers from a
local replay server, the vastai filter line, provider toggles, sort cycle and the detail pane."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual.widgets import Checkbox, DataTable, Input, Static

from tests.backends.replay_server import ReplayServer, Reply
from tests.cli.test_offers_cli import workspace
from zelda_tui.screens.offers import OffersScreen
from zelda_tui.widgets.offer_detail import OfferDetail

from .pilot_util import settle


SIZE = (80, 24)
VAST_KEY = "vast-test-key-0d1e2f"


def cells(table: DataTable, column: str) -> list[str]:
    """A column as shown; "key" is the offer key of each row (the cell may be cut with "…")."""
    if column == "key":
        return [row.key.value for row in table.ordered_rows]
    return [str(cell) for cell in table.get_column(column)]


def status(screen) -> str:
    return str(screen.query_one("#offers-status", Static).render())


async def until(pilot, check, timeout: float = 10.0) -> None:
    """Poll `check()` (a state on screen) until true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the screen never reached the expected state")
        await pilot.pause()
        await asyncio.sleep(0.02)
    await settle(pilot)


async def open_offers(pilot) -> OffersScreen:
    await settle(pilot)
    await pilot.press("3")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, OffersScreen) and screen.title == "Offers"
    return screen


async def test_no_keys_shows_the_catalog_and_names_the_missing_keys(small_ws: Path, app_for, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("VULTR_API_KEY", raising=False)
    app = app_for(workspace(small_ws, "http://127.0.0.1:9/api/v0"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_offers(pilot)
        assert screen.query_one("#offers-filter", Input).value == "gpu_name=A100 gpu_ram>=80"
        table = screen.query_one(DataTable)
        keys = cells(table, "key")
        assert "vultr:vcg-a100-12c-120g-80vram@ewr" in keys and "gcp:a2-ultragpu-1g@us-central1-a" in keys
        assert {k.split(":")[0] for k in keys} == {"vultr", "gcp"}
        assert {r.gpu_ram for r in screen.rows} == {80} and set(cells(table, "fit")) == {"fits"}
        dph = [float(v) for v in cells(table, "dph")]
        assert dph == sorted(dph)
        line = status(screen)
        assert f"{len(keys)} offers" in line and "sort $/h" in line
        assert "2 warnings" in line and "VAST_API_KEY is not set" in line
        assert "VULTR_API_KEY" in screen.warnings[1]

        # a bad query: the column error with its caret, the rows stay as they were
        await pilot.press("slash")
        assert screen.query_one("#offers-filter", Input).has_focus
        await pilot.press("ctrl+shift+a", *"gpu_ram=>80", "enter")
        await until(pilot, lambda: screen.error is not None)
        line = status(screen)
        assert "bad query at column" in line and "'=>'" in line and "^" in line
        assert cells(table, "key") == keys

        # a good query again: H100s only
        assert screen.query_one("#offers-filter", Input).value == "gpu_ram=>80"
        await pilot.press("ctrl+shift+a", *"gpu_name=H100", "enter")
        await until(pilot, lambda: screen.error is None and screen.query_text == "gpu_name=H100")
        gpus = cells(table, "gpu")
        assert gpus and all("H100" in g for g in gpus)
        assert "H100" not in "".join(keys) and cells(table, "key") != keys


async def test_live_vast_toggles_sort_and_detail(small_ws: Path, app_for, monkeypatch):
    monkeypatch.setenv("VAST_API_KEY", VAST_KEY)
    monkeypatch.delenv("VULTR_API_KEY", raising=False)
    with ReplayServer() as server:
        server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
        app = app_for(workspace(small_ws, f"{server.url}/api/v0"))
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_offers(pilot)
            table = screen.query_one(DataTable)
            keys = cells(table, "key")
            assert {k.split(":")[0] for k in keys} == {"vast", "vultr", "gcp"}
            assert "vast:37431797" in keys  # an 80 GB A100 SXM4 of the fixture
            assert "1 warning: vultr: VULTR_API_KEY is not set" in status(screen)
            assert VAST_KEY not in status(screen)

            # `s`: bigger cards first, then $/h — the $/h column is no longer ascending
            before = [float(v) for v in cells(table, "dph")]
            assert before == sorted(before)
            await pilot.press("s")
            await until(pilot, lambda: "sort VRAM ↓" in status(screen))
            after = [float(v) for v in cells(table, "dph")]
            vram = [r.gpu_ram for r in screen.rows]  # the VRAM column is left out at 80 columns
            assert after != before and sorted(after) == before
            assert vram == sorted(vram, reverse=True)
            assert after[:vram.count(vram[0])] == sorted(after[:vram.count(vram[0])])

            # toggling vast off removes its rows; on again brings them back
            screen.query_one("#offers-vast", Checkbox).toggle()
            await until(pilot, lambda: not any(k.startswith("vast:") for k in cells(table, "key")))
            assert {k.split(":")[0] for k in cells(table, "key")} == {"vultr", "gcp"}
            screen.query_one("#offers-vast", Checkbox).toggle()
            await until(pilot, lambda: any(k.startswith("vast:") for k in cells(table, "key")))

            # j/k move, Enter shows the selected offer's detail (every field), again hides it
            table.focus()
            table.move_cursor(row=0)
            await pilot.press("j", "j", "k")
            await pilot.pause()
            assert table.cursor_row == 1
            chosen = screen.rows[1]
            detail = screen.query_one(OfferDetail)
            assert not detail.display
            await pilot.press("enter")
            await pilot.pause()
            assert detail.display and detail.row == chosen
            text = detail.text
            for field in ("price source", "tokens/s source", chosen.key, chosen.price_source[:30], "needs"):
                assert field in text
            await pilot.press("down")
            await pilot.pause()
            assert detail.row == screen.rows[2]
            await pilot.press("enter")
            await pilot.pause()
            assert not detail.display
        assert server.received("POST", "/api/v0/bundles/")[0].headers["authorization"] == f"Bearer {VAST_KEY}"


async def test_launch_asks_first_then_tracks_the_instance(small_ws: Path, app_for, monkeypatch):
    """`l` prices the offer and asks; `n` rents nothing; `y` rents it and the instance is tracked."""
    from zelda_tui.core.store import Store

    monkeypatch.setenv("VAST_API_KEY", VAST_KEY)
    monkeypatch.delenv("VULTR_API_KEY", raising=False)
    with ReplayServer() as server:
        server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
        server.route("PUT", "/api/v0/asks/37431797/", Reply.file("vast/create_instance.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        cfg.write_text(cfg.read_text() + "\n[budget]\nmax_total_usd = 100.0\n")
        app = app_for(cfg)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_offers(pilot)
            table = screen.query_one(DataTable)
            table.focus()
            table.move_cursor(row=cells(table, "key").index("vast:37431797"))
            await pilot.pause()
            await pilot.press("l")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog")
            body = " ".join(str(w.render()) for w in app.screen.query(Static))
            assert "Rent vast:37431797?" in body and "$1.074/h" in body and "budget left: $100.00 of $100.00" in body
            await pilot.press("n")
            await settle(pilot)
            assert not server.received("PUT")

            await pilot.press("l")  # a reflexive Enter answers the safe way: nothing rented
            await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog")
            assert app.focused.id == "confirm-no"
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen.__class__.__name__ != "ConfirmDialog" and not server.received("PUT")

            await pilot.press("l")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog")
            await pilot.press("y")
            await until(pilot, lambda: bool(server.received("PUT")))
            await settle(pilot)
    store = Store(cfg.parent / "state.sqlite")
    try:
        rows = store.instance_rows()
    finally:
        store.close()
    assert [(r["key"], r["offer"], r["state"]) for r in rows] == [("vast:1234568", "vast:37431797", "starting")]


async def test_offers_read_right_at_80_columns(small_ws: Path, app_for, monkeypatch):
    """Catalog only: every column inside the table, no two rows alike, does-not-fit red on the cursor
    row, the offline badge, `l` greyed for GCP and catalog offers, sort back to the top, the
    detail pane scrolled by keyboard, an empty filter reading "all offers"."""
    from .pilot_util import columns_fit

    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("VULTR_API_KEY", raising=False)
    app = app_for(workspace(small_ws, "http://127.0.0.1:9/api/v0"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_offers(pilot)
        table = screen.query_one(DataTable)
        assert columns_fit(table)
        shown = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert len(set(shown)) == len(shown)  # two gcp zones at one price looked identical
        assert "offline catalog, prices of vultr 2024-12 (approx.), gcp 2026 (undated)" in str(
            screen.query_one("#offers-badge", Static).render())

        # `l` where launch cannot work: greyed, and a palette launch says why (nothing priced)
        table.move_cursor(row=[r.provider for r in screen.rows].index("gcp"))
        await pilot.pause()
        assert screen.check_action("launch", ()) is None
        await pilot.press("l")
        await settle(pilot)
        assert app.screen is screen and not any("pricing" in n.message for n in app.notes)
        screen.action_launch()
        assert "browse-only" in app.notes[-1].message

        # a sort starts at the top
        table.move_cursor(row=5)
        await pilot.press("s")
        await until(pilot, lambda: "sort VRAM ↓" in status(screen))
        assert table.cursor_row == 0

        # the detail pane: Tab into it, End scrolls to the launch line
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("tab", "end")
        await pilot.pause(0.2)
        detail = screen.query_one(OfferDetail)
        assert detail.has_focus and detail.scroll_y > 0
        for field in ("price date", "price source", "needs", "hours", "total $", "tokens/s source", "offline catalog: set VULTR_API_KEY"):
            assert field in detail.text
        await pilot.press("escape")
        await pilot.pause()
        assert not detail.display and table.has_focus

        # no filter: every offer, and it says so; a card too small for the plan is red, cursor or not
        screen.query_one("#offers-filter", Input).value = ""
        screen.search("")
        await until(pilot, lambda: screen.query_text == "")
        assert screen.query_one("#offers-filter", Input).placeholder == "all offers (no filter)"
        assert "all offers (no filter)" in status(screen)
        fits = [r.fit for r in screen.rows]
        assert "does-not-fit" in fits
        table.move_cursor(row=fits.index("does-not-fit"))
        await pilot.pause()
        columns = list(table.columns)
        fit_x = sum(table.columns[k].get_render_width(table) for k in columns[:columns.index("fit")])
        line = table.render_line(table.cursor_row + 1 - int(table.scroll_y))  # +1: the header row
        segments = list(line.crop(fit_x, fit_x + table.columns["fit"].get_render_width(table)))
        assert "".join(s.text for s in segments).strip() == "does-not-fit"
        assert any(s.style and s.style.color and s.style.color.name == "red" for s in segments if "does" in s.text)
