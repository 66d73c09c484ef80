"""Waiting helpers for Pilot tests: wait for state, never for a fixed time."""

from __future__ import annotations

import asyncio
import time


async def settle(pilot, timeout: float = 30.0) -> None:
    """Until the screen says it is ready and no worker runs; then let the UI lay out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause()
        busy = any(not w.is_finished for w in pilot.app.workers)
        if not busy and getattr(pilot.app.screen, "ready", True):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the app did not settle")
    await pilot.app.workers.wait_for_complete()
    for _ in range(3):  # DataTable sizes its columns on idle
        await pilot.pause(0.05)


def screen_text(app) -> str:
    """The screen as the user sees it, as plain text (the compositor's output, like a screenshot)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


def columns_fit(table) -> bool:
    """Every column of a DataTable is inside it (none clipped at the right edge, room for a scrollbar)."""
    used = sum(column.get_render_width(table) for column in table.columns.values())
    return used <= table.size.width - 2
