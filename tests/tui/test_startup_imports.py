"""Start-up loads no SSH/HTTP/provider code: importing the app, building the services and
painting the Inventory (the app's own mount work included) leave paramiko, httpx and the
provider backends unloaded until a screen needs them. A fresh interpreter each time, as
`zelda-tui` starts (tests/test_architecture.py checks torch the same way). The time it saves is
measured by bench/bench_startup.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["paramiko", "httpx", "google.auth", "zelda_tui.backends.ssh", "zelda_tui.backends.remote_tail",
         "zelda_tui.backends.providers"]
FIRST_PAINT = """
import asyncio, json, sys
from zelda_tui.app import ZeldaApp
from zelda_tui.services import build_services
heavy = json.loads(sys.argv[2])
services = build_services(sys.argv[1])
after_build = [m for m in heavy if m in sys.modules]

async def paint():
    app = ZeldaApp(services)
    async with app.run_test(size=(110, 32)) as pilot:
        while type(app.screen).__name__ != "InventoryScreen" or not app.screen.ready:
            await pilot.pause(0.01)
        return [m for m in heavy if m in sys.modules]

print(json.dumps({"after_build": after_build, "after_paint": asyncio.run(paint())}))
services.close()
"""


def test_start_up_imports_no_ssh_http_or_provider_modules(small_ws: Path):
    out = subprocess.run([sys.executable, "-c", FIRST_PAINT, str(small_ws), json.dumps(HEAVY)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"after_build": [], "after_paint": []}
