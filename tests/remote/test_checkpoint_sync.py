"""Checkpoints come home as they land (#17.1): against a real sshd, whole checkpoints only, each file
sha256-verified against the box's digest, renamed into place so a half copy is never a checkpoint."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from zelda_tui.backends import checkpoint_sync as cs
from zelda_tui.backends.ssh import SshSession
from zelda_tui.core import runs


def checkpoint(box_run: Path, step: int, size: int = 20_000, complete: bool = True) -> Path:
    """A checkpoint dir as the trainer leaves it (trainer_state.json written last)."""
    d = box_run / runs.CHECKPOINTS / f"checkpoint-{step}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "adapter_model.safetensors").write_bytes(bytes([step % 256]) * size)
    (d / "optimizer.pt").write_bytes(b"o" * (size // 2) + str(step).encode())
    (d / "rng_state.pth").write_bytes(b"rng" + str(step).encode())
    if complete:
        (d / runs.CHECKPOINT_DONE).write_text(json.dumps({"global_step": step}))
    return d


def connect(sshd):
    settings = sshd.settings()
    return lambda: SshSession("gpu-box", settings).connect()


def files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_the_newest_complete_checkpoint_comes_home_verified(sshd, tmp_path: Path):
    box, local = tmp_path / "box" / "run", tmp_path / "local" / "run"
    checkpoint(box, 3)
    checkpoint(box, 6, complete=False)  # being written: not a checkpoint yet
    sync = cs.CheckpointSync(connect(sshd), str(box), local)
    got = sync.run_once()
    assert got is not None and got.step == 3 and got.bytes > 0
    here = local / runs.CHECKPOINTS / "checkpoint-3"
    manifest = json.loads((here / cs.MANIFEST).read_text())
    assert {k: v for k, v in files(here).items() if k != cs.MANIFEST} == files(box / runs.CHECKPOINTS / "checkpoint-3")
    assert sorted(manifest) == sorted(files(box / runs.CHECKPOINTS / "checkpoint-3"))
    assert cs.last_synced(local) == "checkpoints/checkpoint-3" and cs.verify(here) is None
    assert sync.run_once() is None  # nothing new
    (box / runs.CHECKPOINTS / "checkpoint-6" / runs.CHECKPOINT_DONE).write_text('{"global_step": 6}')
    assert sync.run_once().step == 6
    checkpoint(box, 9)
    assert sync.run_once().step == 9
    assert [s for s, _ in cs.synced(local)] == [6, 9]  # the older ones this sync wrote are pruned (keep 2)
    assert not list((local / runs.CHECKPOINTS).glob(f"{cs.STAGING}*"))


def test_a_copy_cut_off_when_the_box_dies_is_never_a_checkpoint(sshd, tmp_path: Path):
    box, local = tmp_path / "box" / "run", tmp_path / "local" / "run"
    checkpoint(box, 3, size=1000)
    sync = cs.CheckpointSync(connect(sshd), str(box), local)
    assert sync.run_once().step == 3
    big = checkpoint(box, 6, size=60_000_000)  # big enough to be caught mid-copy
    said: list[str] = []
    sync.say = sync.warn = said.append
    copier = threading.Thread(target=sync.run_once)
    copier.start()
    staging = local / runs.CHECKPOINTS / f"{cs.STAGING}6"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.endswith(".part") and p.stat().st_size > 0
                                                  for p in staging.glob("*")):
        time.sleep(0.01)
    sshd.drop_sessions()  # the box goes away mid-copy
    copier.join(60)
    assert said and "checkpoint sync:" in said[-1], said
    assert [s for s, _ in runs.checkpoints(local)] == [3]  # the half copy is not a checkpoint to anyone
    assert [s for s, _ in cs.synced(local)] == [3] and cs.newest_good(local).step == 3
    assert staging.is_dir()  # what arrived is kept for the next pass
    got = sync.run_once()  # the link is back: it resumes and finishes
    assert got is not None and got.step == 6 and got.bytes < sum(len(b) for b in files(big).values())
    assert cs.verify(local / runs.CHECKPOINTS / "checkpoint-6") is None and not staging.exists()


def test_a_synced_checkpoint_that_fails_its_checksum_falls_back_to_the_previous(sshd, tmp_path: Path):
    box, local = tmp_path / "box" / "run", tmp_path / "local" / "run"
    sync = cs.CheckpointSync(connect(sshd), str(box), local)
    for step in (3, 6):
        checkpoint(box, step)
        sync.run_once()
    with open(local / runs.CHECKPOINTS / "checkpoint-6" / "optimizer.pt", "r+b") as fh:
        fh.write(b"X")  # bit rot on this disk
    good = cs.newest_good(local)
    assert good.step == 3 and good.skipped == ["checkpoint-6: optimizer.pt fails its sha256 check"]
    (local / runs.CHECKPOINTS / "checkpoint-3" / "rng_state.pth").unlink()
    assert cs.newest_good(local).step is None and "checkpoint-3: rng_state.pth is missing" in cs.newest_good(local).skipped


def test_a_checkpoint_fetched_before_is_completed_in_place(sshd, tmp_path: Path):
    box, local = tmp_path / "box" / "run", tmp_path / "local" / "run"
    checkpoint(box, 3)
    shutil.copytree(box / runs.CHECKPOINTS / "checkpoint-3", local / runs.CHECKPOINTS / "checkpoint-3")
    (local / runs.CHECKPOINTS / "checkpoint-3" / "optimizer.pt").write_bytes(b"stale")
    got = cs.CheckpointSync(connect(sshd), str(box), local).run_once()
    assert got.step == 3 and cs.verify(local / runs.CHECKPOINTS / "checkpoint-3") is None


def test_backup_hosts_get_each_checkpoint_too(sshd, tmp_path: Path):
    if not shutil.which("rsync"):
        pytest.fail("rsync is not installed: run `bash scripts/system-deps.sh`")
    box, local, backup = tmp_path / "box" / "run", tmp_path / "local" / "run", tmp_path / "backup" / "run"
    checkpoint(box, 3)
    kh = sshd.settings().known_hosts
    rsync_ssh = f"ssh -F {sshd.root / 'ssh_config'} -o UserKnownHostsFile={kh} -o BatchMode=yes"
    got = cs.CheckpointSync(connect(sshd), str(box), local, backup=(f"gpu-box:{backup}", rsync_ssh)).run_once()
    assert got.backup == f"gpu-box:{backup}/checkpoints/checkpoint-3" and not got.backup_error
    assert files(backup / runs.CHECKPOINTS / "checkpoint-3") == files(box / runs.CHECKPOINTS / "checkpoint-3")


def test_the_background_thread_copies_when_asked_and_finishes_on_close(sshd, tmp_path: Path):
    box, local = tmp_path / "box" / "run", tmp_path / "local" / "run"
    checkpoint(box, 3)
    said: list[str] = []
    sync = cs.CheckpointSync(connect(sshd), str(box), local, say=said.append)
    sync.wanted()
    sync.close(wait_s=30)
    assert not sync.busy() and [s for s, _ in cs.synced(local)] == [3]
    assert said and said[-1].startswith("checkpoint-3 is safe at home") and "sha256 verified" in said[-1]
    sync.wanted()  # closed: no new pass
    assert not sync.busy()
