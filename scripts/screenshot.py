"""Save SVG screenshots of the screens on a fresh demo workspace (for the README).

    python scripts/screenshot.py docs/        # inventory, mix, offers, runs and leaderboard .svg

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
from zelda_tui.core import runs  # noqa: E402
from zelda_tui.core.demo import init_workspace  # noqa: E402
from zelda_tui.core.train_config import DataSection, ModelSection, RunConfig  # noqa: E402
from zelda_tui.services import build_services  # noqa: E402

SHOTS = ((None, "inventory.svg"), ("2", "mix.svg"), ("3", "offers.svg"), ("4", "runs.svg"), ("5", "leaderboard.svg"))


def seed_run(ws: Path, name: str) -> None:
    """A finished local run by the run-dir contract (metrics, log, status), as the trainer leaves it."""
    run_dir = ws / "runs" / name
    run_dir.mkdir(parents=True)
    RunConfig(name=name, created="2026-11-24T18:00:00Z", model=ModelSection(name="zelda-16b-v1"),
              data=DataSection(mix="zelda_16b_mix_v1", phase=2)).save(run_dir)
    with open(run_dir / runs.TRAIN_LOG, "w") as log:
        for step in range(10, 1210, 10):
            loss = 0.35 + 1.6 / (1 + step / 60)
            runs.append_metric(run_dir, "train", step=step, loss=round(loss, 4), lr=2e-4, tokens_per_s=9870.0,
                               vram_peak_gb=18.4, eta_s=(1200 - step) * 6.1)
            log.write(f"step {step}/1200 loss {loss:.4f} lr 2.0e-04 9,870 tok/s vram 18.4 GB\n")
            if step % 200 == 0:
                runs.append_metric(run_dir, "eval", step=step, eval_loss=round(loss + 0.06, 4))
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=1200, max_steps=1200,
                                              last_checkpoint=str(run_dir / "checkpoints" / "checkpoint-1200"),
                                              message="adapters in lora_adapters/"))


async def shoot(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = init_workspace(Path(tmp) / "demo")
        services = build_services(config)
        try:
            seed_results(services, make_run(config.parent, "zelda-16b-v1_20261124T180000Z", losses={2: 0.61, 4: 0.48}))
            seed_run(config.parent, "zelda-16b-v1_20261125T090000Z")
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
