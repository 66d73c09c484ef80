"""`train stop` never signals a local process on the word of a mirrored remote status.json.

A remote run's local copy holds the box's status.json, whose pid means nothing here; once
state.sqlite is lost, only the run dir itself can say the run is remote (the `.remote` marker)
and only the process' command line can say a pid is still this run's trainer.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.remote.sshd import Sshd
from zelda_tui.core import runs
from zelda_tui.services import build_services


@pytest.fixture
def sleeper():
    """A real, unrelated local process whose pid the mirrored status.json will name."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def mirrored_run(tmp_path: Path, cfg: Path, server: Sshd, pid: int) -> Path:
    """A run on the box (this machine over the loopback sshd), copied here by the real mirror."""
    box = tmp_path / "box"
    remote_dir = box / "models" / "r1"
    remote_dir.mkdir(parents=True)
    (remote_dir / runs.STATUS).write_text(json.dumps({"state": "running", "pid": pid, "host": socket.gethostname()}))
    (remote_dir / runs.TRAIN_LOG).write_text("step 1\n")
    with open(cfg, "a") as fh:
        fh.write(f'\n[remote]\ntraining_dir = "{box}"\nssh_config = "{server.root / "ssh_config"}"\n'
                 f'known_hosts = "{server.settings().known_hosts}"\n')
    run_dir = cfg.parent / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / runs.RUN_TOML).write_text("")  # frozen here when the run was created (its content plays no part)
    services = build_services(cfg)
    try:
        services.store.run_upsert("r1", str(run_dir), "gpu-box", "m", 0, pid, "running", str(remote_dir))
        mirror = services.runs.mirror("r1")
        mirror.sync_once()
        mirror.close()
    finally:
        services.close()
    assert runs.read_status(run_dir).pid == pid
    return run_dir


@pytest.fixture
def own_sshd(tmp_path: Path):
    server = Sshd.create(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()


def test_stop_of_a_mirrored_run_after_state_loss_does_not_signal_a_local_pid(own_sshd, small_ws: Path,
                                                                               tmp_path: Path, sleeper):
    """The box is gone (destroyed) and state.sqlite deleted: the marker the mirror wrote sends the stop to
    the box, which cannot be reached; the local sleep with the mirrored pid lives on."""
    run_dir = mirrored_run(tmp_path, small_ws, own_sshd, sleeper.pid)
    assert runs.read_remote_marker(run_dir) == {"host": "gpu-box", "remote_dir": str(tmp_path / "box" / "models" / "r1")}
    own_sshd.stop()
    (small_ws.parent / "state.sqlite").unlink()

    res = run_cli("--config", str(small_ws), "train", "stop", "r1")

    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "gpu-box" in res.stderr, res.stderr
    assert sleeper.poll() is None  # still alive
    listed = json.loads(run_cli("--config", str(small_ws), "train", "list", "--json").stdout)
    assert listed[0]["host"] == "gpu-box"  # indexed again from the run dir, not shown as local


def test_stop_checks_the_process_command_line_when_the_run_dir_has_no_marker(own_sshd, small_ws: Path,
                                                                              tmp_path: Path, sleeper):
    """A copy without a marker (mirrored by an older zelda-tui) and no state: stop takes it for local, but
    the pid is a `sleep`, not this run dir's trainer, so nothing is signalled."""
    run_dir = mirrored_run(tmp_path, small_ws, own_sshd, sleeper.pid)
    (run_dir / runs.REMOTE_MARKER).unlink()
    (small_ws.parent / "state.sqlite").unlink()

    res = run_cli("--config", str(small_ws), "train", "stop", "r1")

    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"pid {sleeper.pid} is another program" in res.stderr
    assert sleeper.poll() is None


def test_stop_refuses_a_run_started_on_another_host(small_ws: Path, sleeper):
    run_dir = small_ws.parent / "runs" / "r2"
    run_dir.mkdir(parents=True)
    (run_dir / runs.RUN_TOML).write_text("")
    (run_dir / runs.STATUS).write_text(json.dumps({"state": "running", "pid": sleeper.pid, "host": "other-box"}))

    res = run_cli("--config", str(small_ws), "train", "stop", "r2")

    assert res.returncode != 0 and "'other-box', not on this machine" in res.stderr, res.stderr
    assert sleeper.poll() is None
