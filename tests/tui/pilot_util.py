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
