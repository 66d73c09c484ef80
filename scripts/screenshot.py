"""Save SVG screenshots of the screens on a fresh demo workspace (for the README).

    python scripts/screenshot.py docs/        # inventory, mix, offers, runs and leaderboard .svg

The workspace is exactly what `zelda-tui demo init` writes (services.demo.init_demo): six
generated datasets and one finished run of demo data whose answers the real validator scored.
Offers come from the dated offline catalog (no API keys needed).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tui.pilot_util import settle  # noqa: E402
from zelda_tui.app import ZeldaApp  # noqa: E402
from zelda_tui.services import build_services  # noqa: E402
from zelda_tui.services.demo import init_demo  # noqa: E402

SHOTS = ((None, "inventory.svg"), ("2", "mix.svg"), ("3", "offers.svg"), ("4", "runs.svg"), ("5", "leaderboard.svg"))


async def shoot(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = init_demo(Path(tmp) / "demo")
        with build_services(config) as services:
            app = ZeldaApp(services)
            async with app.run_test(size=(110, 32)) as pilot:
                for key, name in SHOTS:
                    if key:
                        await pilot.press(key)
                    await settle(pilot)
                    out_dir.mkdir(parents=True, exist_ok=True)
                    app.save_screenshot(filename=name, path=str(out_dir))
                    print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    asyncio.run(shoot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
