"""`zelda-tui demo init DIR`: a workspace with the real dataset sizes and generated records.

The config is the shipped template (the repo's config.toml); the datasets come from our own
deterministic generator (demo.data), one process per dataset when a pool is given; a finished
run labelled as demo data (demo.run) fills the Runs screen and, once its answers are scored
(`services.demo.init_demo`), the Leaderboard.
"""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path
from typing import Callable

from ..core import atomic, config as config_mod
from ..core.errors import ZeldaError
from . import run as demo_run
from .data import DEMO_DATASETS, write_demo_dataset

TEMPLATE = Path(config_mod.__file__).with_name("templates") / "config.toml"  # the repo's config.toml
DEFAULT_SEED = 20260102


def init_workspace(
    target: Path,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    pool: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write DIR/config.toml, DIR/datasets/*.jsonl and the demo run; refuse a non-empty DIR unless force."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ZeldaError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ZeldaError(f"{target}: directory is not empty (use --force to write the demo into it)")
    datasets = target / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    total = sum(n for _, n in DEMO_DATASETS)
    jobs = [(datasets / f"{name}.jsonl", name, count, seed) for name, count in DEMO_DATASETS]
    done = 0
    if pool is not None:
        futures = [(pool.submit(write_demo_dataset, *job), job[2]) for job in jobs]
        for fut, count in futures:
            fut.result()
            done += count
            if progress:
                progress(done, total)
    else:
        for job in jobs:
            write_demo_dataset(*job)
            done += job[2]
            if progress:
                progress(done, total)
    config_path = target / "config.toml"
    atomic.write_text(config_path, TEMPLATE.read_text(encoding="utf-8"))
    demo_run.write_demo_run(config_mod.load(config_path), seed)
    return config_path
