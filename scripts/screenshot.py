"""Save SVG screenshots of the screens on a fresh demo workspace (for the README).

    python scripts/screenshot.py docs/        # inventory.svg, mix.svg, offers.svg, leaderboard.svg

Offers come from the dated offline catalog (no API keys needed); the Leaderboard shows results
scored by the real services over answer files made without a model (tests/evals_seed.py).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.evals_seed import make_run, seed_results  # noqa: E402
from tests.tui.pilot_util import settle  # noqa: E402
from zelda_tui.app import ZeldaApp  # noqa: E402
from zelda_tui.core.demo import init_workspace  # noqa: E402
from zelda_tui.services import build_services  # noqa: E402

SHOTS = ((None, "inventory.svg"), ("2", "mix.svg"), ("3", "offers.svg"), ("5", "leaderboard.svg"))


async def shoot(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = init_workspace(Path(tmp) / "demo")
        services = build_services(config)
        try:
            seed_results(services, make_run(config.parent, "zelda-16b-v1_20261124T180000Z", losses={2: 0.61, 4: 0.48}))
            app = ZeldaApp(services)
            async with app.run_test(size=(110, 32)) as pilot:
                for key, name in SHOTS:
                    if key:
                        await pilot.press(key)
                    await settle(pilot)
                    out_dir.mkdir(parents=True, exist_ok=True)
                    app.save_screenshot(filename=name, path=str(out_dir))
                    print(f"wrote {out_dir / name}")
        finally:
            services.close()


if __name__ == "__main__":
    asyncio.run(shoot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
