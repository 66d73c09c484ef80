"""Snapshots of the Leaderboard at 80x24 and 160x48 over results scored by the real services.

Update after an intended UI change with
`pytest tests/tui/test_leaderboard_snapshot.py --snapshot-update` and look at the SVG in
tests/tui/__snapshots__/ before committing it. (The sample viewer is not snapshotted: it names
the checker that ran, Asar or the pre-check, which depends on the machine.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evals_seed import make_run, seed_results
from zelda_tui.app import ZeldaApp
from zelda_tui.services import build_services

from .pilot_util import settle


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_leaderboard_snapshot(snap_compare, small_ws: Path, size: tuple[int, int]):
    run_dir = make_run(small_ws.parent, "zelda-16b-v1_20260101T000000Z", losses={2: 0.5, 4: 1.0})
    services = build_services(small_ws)
    try:
        seed_results(services, run_dir)

        async def to_leaderboard(pilot) -> None:
            await pilot.press("5")
            await settle(pilot)

        assert snap_compare(ZeldaApp(services), terminal_size=size, run_before=to_leaderboard)
    finally:
        services.close()
