"""Backup: the GPU box rsyncs lora_adapters/ straight to the backup host (both are the test sshd)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zelda_tui.core.errors import ZeldaError
from zelda_tui.services import build_services


def remote_run(ws_cfg: Path, sshd, box: Path, backup: Path, backup_table: bool = True) -> Path:
    kh = sshd.settings().known_hosts
    extra = f"""
[remote]
training_dir = "{box}"
ssh_config = "{sshd.root / 'ssh_config'}"
known_hosts = "{kh}"
"""
    if backup_table:
        extra += f"""
[backup]
host = "gpu-box"
path = "{backup}"
rsync_ssh = "ssh -F {sshd.root / 'ssh_config'} -o UserKnownHostsFile={kh} -o BatchMode=yes"
"""
    with open(ws_cfg, "a") as fh:
        fh.write(extra)
    return ws_cfg


def test_backup_rsyncs_adapters_from_the_box(sshd, small_ws: Path, tmp_path: Path):
    if not shutil.which("rsync"):
        pytest.fail("rsync is not installed: run `bash scripts/system-deps.sh`")
    box, backup = tmp_path / "box", tmp_path / "backup"
    cfg = remote_run(small_ws, sshd, box, backup)
    adapters = box / "models" / "zelda_run1" / "lora_adapters"
    adapters.mkdir(parents=True)
    (adapters / "adapter_model.safetensors").write_bytes(b"\x01" * 50_000)
    (adapters / "README.md").write_text("card")
    services = build_services(cfg)
    try:
        services.store.run_upsert("zelda_run1", str(tmp_path / "ws" / "runs" / "zelda_run1"), "gpu-box", "m", 0, 1,
                                  "completed", str(box / "models" / "zelda_run1"))
        out = services.runs.backup("zelda_run1")
        target = backup / "zelda_run1" / "lora_adapters"
        assert out.target == f"gpu-box:{target}" and out.bytes == 50_004
        assert (target / "adapter_model.safetensors").read_bytes() == b"\x01" * 50_000
        assert (target / "README.md").read_text() == "card"
        with pytest.raises(ZeldaError, match="local run"):
            services.store.run_upsert("here", str(tmp_path / "here"), "local", "m", 0, 1, "completed")
            services.runs.backup("here")
    finally:
        services.close()


def test_backup_needs_the_table_and_a_reachable_host(sshd, small_ws: Path, tmp_path: Path):
    cfg = remote_run(small_ws, sshd, tmp_path / "box", tmp_path / "backup", backup_table=False)
    services = build_services(cfg)
    try:
        services.store.run_upsert("r", str(tmp_path / "r"), "gpu-box", "m", 0, 1, "completed", str(tmp_path / "box" / "r"))
        with pytest.raises(ZeldaError, match=r"\[backup\]: set host"):
            services.runs.backup("r")
    finally:
        services.close()
    with open(cfg, "a") as fh:
        fh.write('\n[backup]\nhost = "no-such-backup-host.invalid"\npath = "/srv/b"\n')
    services = build_services(cfg)
    try:
        with pytest.raises(ZeldaError, match=r"gpu-box.*backup: create no-such-backup-host.invalid:/srv/b/r/lora_adapters failed"):
            services.runs.backup("r")
    finally:
        services.close()
