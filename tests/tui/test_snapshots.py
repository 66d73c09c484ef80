"""Snapshots of the screens on the demo workspace at 80x24 (an SSH session) and 160x48.

Update after an intended UI change with `pytest tests/tui/test_snapshots.py --snapshot-update`
and look at the SVGs in tests/tui/__snapshots__/ before committing them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from zelda_tui.app import ZeldaApp
from zelda_tui.services import build_services

from .pilot_util import settle

FIXED_MTIME = 1_767_225_600  # 2026-01-01 00:00 UTC


@pytest.fixture
def snapshot_app(demo_ws: Path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    for f in (demo_ws.parent / "datasets").iterdir():
        os.utime(f, (FIXED_MTIME, FIXED_MTIME))
    services = build_services(demo_ws)
    services.datasets.scan()  # warm the cache so the screen shows the same summary every run
    yield ZeldaApp(services)
    services.close()
    monkeypatch.delenv("TZ")
    time.tzset()


def test_inventory_snapshot(snap_compare, snapshot_app):
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=settle)


def test_inventory_snapshot_wide(snap_compare, snapshot_app):
    assert snap_compare(snapshot_app, terminal_size=(160, 48), run_before=settle)


@pytest.fixture
def offline(monkeypatch):
    """No provider key: the dated offline catalog, the same on every machine."""
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("VULTR_API_KEY", raising=False)


def test_offers_snapshot(snap_compare, snapshot_app, offline):
    async def to_offers(pilot) -> None:
        await pilot.press("3")
        await settle(pilot)

    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=to_offers)


def test_offers_detail_snapshot_wide(snap_compare, snapshot_app, offline):
    async def to_detail(pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(snapshot_app, terminal_size=(160, 48), run_before=to_detail)


def test_mix_snapshot(snap_compare, snapshot_app):
    async def to_mix(pilot) -> None:
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=to_mix)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_runs_snapshot(snap_compare, demo_ws: Path, monkeypatch, size):
    """The demo's finished run (what `demo init` seeds): list, summary, chart and log, as an SSH
    session and a big terminal show them."""
    from zelda_tui.core import config as config_mod
    from zelda_tui.demo import run as demo_run

    demo_run.write_demo_run(config_mod.load(demo_ws))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()

    async def to_runs(pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        await pilot.pause(0.5)  # the chart and the log fill from a worker
        await settle(pilot)

    services = build_services(demo_ws)
    try:
        assert snap_compare(ZeldaApp(services), terminal_size=size, run_before=to_runs)
    finally:
        services.close()
        monkeypatch.delenv("TZ")
        time.tzset()
