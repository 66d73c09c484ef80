"""A hostile GPU box must not make `train fetch` write outside the local run dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.remote.sshd import Sshd
from zelda_tui.services import build_services

HOSTILE_SFTP = Path(__file__).with_name("hostile_sftp.py")


@pytest.fixture(scope="module")
def hostile_sshd(tmp_path_factory):
    """A real sshd whose SFTP subsystem is the real sftp-server behind a filter that lies in listings."""
    server = Sshd.create(tmp_path_factory.mktemp("hostile-sshd"),
                         sftp=f"{sys.executable} {HOSTILE_SFTP} /usr/lib/openssh/sftp-server")
    server.start()
    yield server
    server.stop()


def remote_workspace(cfg: Path, server: Sshd, box: Path) -> Path:
    with open(cfg, "a") as fh:
        fh.write(f'\n[remote]\ntraining_dir = "{box}"\nssh_config = "{server.root / "ssh_config"}"\n'
                 f'known_hosts = "{server.settings().known_hosts}"\n')
    return cfg


def test_fetch_refuses_a_listing_that_names_a_file_outside_the_run_dir(hostile_sshd, small_ws: Path, tmp_path: Path):
    """Simulates a box whose SFTP server lists `../../escape.txt` inside lora_adapters/ (the box holds a
    real file that the filter renames in the listing, and the escaped path exists on the box too, so an
    unguarded fetch reads it and writes it to runs/escape.txt here)."""
    box = tmp_path / "box"
    adapters = box / "models" / "r1" / "lora_adapters"
    adapters.mkdir(parents=True)
    (adapters / "adapter_model.safetensors").write_bytes(b"\x01" * 1000)
    (adapters / "HOSTILE-..%2F..%2Fescape.txt").write_text("planted\n")
    (box / "models" / "escape.txt").write_text("planted\n")  # what `lora_adapters/../../escape.txt` is on the box
    cfg = remote_workspace(small_ws, hostile_sshd, box)
    run_dir = small_ws.parent / "runs" / "r1"
    services = build_services(cfg)
    try:
        services.store.run_upsert("r1", str(run_dir), "gpu-box", "m", 0, 1, "completed", str(box / "models" / "r1"))
    finally:
        services.close()

    res = run_cli("--config", str(cfg), "train", "fetch", "r1")

    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "'../../escape.txt'" in res.stderr and "outside the run dir" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (small_ws.parent / "runs" / "escape.txt").exists()
    assert not (run_dir / "lora_adapters" / "adapter_model.safetensors").exists()  # refused before any write


def test_fetch_through_the_filter_still_works_for_honest_names(hostile_sshd, small_ws: Path, tmp_path: Path):
    """The filter itself passes a normal listing through untouched (so the refusal above is the guard's);
    a symlink on the box pointing elsewhere (here /etc) is not followed."""
    box = tmp_path / "box"
    adapters = box / "models" / "r2" / "lora_adapters"
    (adapters / "sub").mkdir(parents=True)
    (adapters / "adapter_model.safetensors").write_bytes(b"\x02" * 1000)
    (adapters / "sub" / "tokenizer.json").write_text("{}")
    (adapters / "etc").symlink_to("/etc")
    cfg = remote_workspace(small_ws, hostile_sshd, box)
    run_dir = small_ws.parent / "runs" / "r2"
    services = build_services(cfg)
    try:
        services.store.run_upsert("r2", str(run_dir), "gpu-box", "m", 0, 1, "completed", str(box / "models" / "r2"))
        services.runs.fetch("r2")
    finally:
        services.close()
    assert (run_dir / "lora_adapters" / "adapter_model.safetensors").read_bytes() == b"\x02" * 1000
    assert (run_dir / "lora_adapters" / "sub" / "tokenizer.json").read_text() == "{}"
    assert not (run_dir / "lora_adapters" / "etc").exists()


def test_a_refusal_is_not_mistaken_for_missing_adapters_by_its_wording(hostile_sshd, small_ws: Path, tmp_path: Path):
    """The training dir's own name holds the words "does not exist": the refusal of a hostile listing must
    still read as a refusal, not as "lora_adapters/ does not exist yet" (told apart by type, not by text)."""
    box = tmp_path / "what does not exist"
    adapters = box / "models" / "r3" / "lora_adapters"
    adapters.mkdir(parents=True)
    (adapters / "HOSTILE-..%2F..%2Fescape.txt").write_text("planted\n")
    (box / "models" / "escape.txt").write_text("planted\n")
    cfg = remote_workspace(small_ws, hostile_sshd, box)
    services = build_services(cfg)
    try:
        services.store.run_upsert("r3", str(small_ws.parent / "runs" / "r3"), "gpu-box", "m", 0, 1, "completed",
                                  str(box / "models" / "r3"))
    finally:
        services.close()

    res = run_cli("--config", str(cfg), "train", "fetch", "r3")

    assert res.returncode == 1, res.stdout + res.stderr
    assert "outside the run dir" in res.stderr and "does not exist yet" not in res.stderr
    assert not (small_ws.parent / "runs" / "escape.txt").exists()
