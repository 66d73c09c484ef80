"""`zelda-tui demo init`: the demo workspace's files (zelda_tui.demo), then its demo run's answers
scored by the real validator into state.sqlite, so the Leaderboard, the sample viewer and
compare show rows on a machine that cannot generate answers."""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path
from typing import Callable

from ..demo import run as demo_run, workspace as demo


def init_demo(target: Path, seed: int = demo.DEFAULT_SEED, force: bool = False, pool: Executor | None = None,
              progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the demo workspace into `target` and score its demo run; returns config.toml."""
    from . import build_services

    config_path = demo.init_workspace(target, seed=seed, force=force, pool=pool, progress=progress)
    with build_services(config_path) as services:
        services.evals.ingest_run(services.config.workspace / "runs" / demo_run.run_name(services.config))
    return config_path
