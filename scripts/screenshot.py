"""Save SVG screenshots of the Inventory and Mix screens on a fresh demo workspace (for the README)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from zelda_tui.app import ZeldaApp
from zelda_tui.core.demo import init_workspace
from zelda_tui.services import build_services

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.tui.pilot_util import settle  # noqa: E402


async def shoot(inventory_svg: Path, mix_svg: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = init_workspace(Path(tmp) / "demo")
        services = build_services(config)
        try:
            app = ZeldaApp(services)
            async with app.run_test(size=(100, 30)) as pilot:
                for key, target in ((None, inventory_svg), ("2", mix_svg)):
                    if key:
                        await pilot.press(key)
                    await settle(pilot)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    app.save_screenshot(filename=target.name, path=str(target.parent))
                    print(f"wrote {target}")
        finally:
            services.close()


if __name__ == "__main__":
    asyncio.run(shoot(Path(sys.argv[1]), Path(sys.argv[2])))
