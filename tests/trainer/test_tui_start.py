"""Starting a real training run from the Runs screen, keyboard only, and watching it finish."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual.widgets import DataTable

from tests.tui.pilot_util import settle
from zelda_tui.app import ZeldaApp
from zelda_tui.services import build_services


async def test_new_run_from_the_runs_screen(train_ws: Path):
    services = build_services(train_ws)
    app = ZeldaApp(services)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("4")
            await settle(pilot)
            await pilot.press("n")
            await pilot.pause()
            assert app.screen.__class__.__name__ == "StartRunDialog"
            await pilot.press("enter")  # the first choice: phase 0
            deadline = time.monotonic() + 240
            state = ""
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                await pilot.pause()
                table = app.screen.query_one(DataTable)
                if table.row_count:
                    state = str(table.get_cell_at((0, 2)))
                    if state in ("completed", "failed", "died"):
                        break
            assert state == "completed"
            assert not [n for n in app._notifications if n.severity == "error"]
    finally:
        services.close()
    run_dirs = list((train_ws.parent / "runs").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "lora_adapters" / "adapter_model.safetensors").is_file()
