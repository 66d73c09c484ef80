"""`train fetch` of a remote run over a real sshd: what a user reads when there is nothing to fetch yet."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli
from tests.remote.test_backup import remote_run
from zelda_tui.services import build_services


def test_fetch_before_the_run_wrote_its_adapters_says_so_in_one_line(sshd, small_ws: Path, tmp_path: Path):
    """lora_adapters/ is written when a run ends: before that, fetch says so and how to get a checkpoint."""
    box = tmp_path / "box"
    remote = box / "models" / "r1"
    (remote / "checkpoints").mkdir(parents=True)
    cfg = remote_run(small_ws, sshd, box, tmp_path / "backup", backup_table=False)
    services = build_services(cfg)
    try:
        services.store.run_upsert("r1", str(small_ws.parent / "runs" / "r1"), "gpu-box", "m", 0, 1, "running",
                                  str(remote))
    finally:
        services.close()

    res = run_cli("--config", str(cfg), "train", "fetch", "r1")

    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        f"zelda-tui: error: gpu-box: {remote}/lora_adapters does not exist yet (the run writes it when it ends; "
        "fetch a checkpoint with --checkpoint latest)"]


def test_fetch_latest_with_no_checkpoint_yet_names_the_run_dir(sshd, small_ws: Path, tmp_path: Path):
    box = tmp_path / "box"
    remote = box / "models" / "r2"
    (remote / "lora_adapters").mkdir(parents=True)
    cfg = remote_run(small_ws, sshd, box, tmp_path / "backup", backup_table=False)
    services = build_services(cfg)
    try:
        services.store.run_upsert("r2", str(small_ws.parent / "runs" / "r2"), "gpu-box", "m", 0, 1, "running",
                                  str(remote))
    finally:
        services.close()

    res = run_cli("--config", str(cfg), "train", "fetch", "r2", "--checkpoint", "latest")

    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(rf"zelda-tui: error: gpu-box \(127\.0\.0\.1:\d+\): no checkpoints in "
                                            rf"{re.escape(str(remote))} yet", lines[0]), lines
