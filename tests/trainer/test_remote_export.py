"""Export where the base model is: a remote run's checkpoint is merged on its box (the loopback
sshd, whose python is the test venv's), detached like the trainer, with the run's own python from
box.json; the link dropping does not stop it, a second export of the same checkpoint follows the
running one, ctrl+c leaves it running on the box, and only what was asked comes home."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.backends import export_runner as layout
from zelda_tui.core import locks, runs

from .conftest import wait_for
from .test_remote_eval import finished, start_remote
from .test_remote_train import remote_workspace


class Cli:
    """`zelda-tui export` as a child whose stderr lines are read as they come."""

    def __init__(self, cfg: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "ZELDA_TUI_CONFIG"}
        self.proc = subprocess.Popen([sys.executable, "-m", "zelda_tui", "export", *args, "--json", "--config", str(cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.err: list[str] = []
        self._reader = threading.Thread(target=lambda: self.err.extend(iter(self.proc.stderr.readline, "")), daemon=True)
        self._reader.start()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.err)

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self._reader.join(10)
        return self.proc.returncode, out, "".join(self.err)


def box_exporter(remote: Path, checkpoint: str) -> int:
    """The pid of the export program running on the box for a checkpoint (it holds the lock)."""
    pid = wait_for(lambda: locks.holder(Path(layout.lock_path(remote, checkpoint))), timeout=120)
    return int(pid)


@pytest.fixture
def stopped_pids():
    """Box programs a test froze: thawed and killed if it fails half-way."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def test_a_remote_runs_checkpoint_is_exported_on_its_box(tmp_path: Path, tiny_model: Path, sshd, stopped_pids):
    cfg = remote_workspace(tmp_path / "ws", tiny_model, sshd, max_steps=2, every=2)
    name, remote = start_remote(cfg)
    finished(remote)
    local = tmp_path / "ws" / "runs" / name
    assert not (local / runs.ADAPTERS).exists()  # the adapters stay on the box: nothing fetched

    # a checkpoint the box does not have: one line naming what it has, nothing started there
    res = run_cli("export", name, "--checkpoint", "9", "--config", str(cfg))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"zelda-tui: error: {name} has no complete checkpoint-9 on gpu-box (it has: final, checkpoint-2)")
    assert not (remote / layout.EXPORT_DIR).exists()
    # --here (the box is gone): from adapters here, which this run does not have yet
    res = run_cli("export", name, "--here", "--config", str(cfg))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        f"zelda-tui: error: {name}: no adapters here to export from: `zelda-tui train fetch {name} --checkpoint all` "
        "first (the base model must be on this machine too), or export on the box (without --here)")

    # the export runs on the box; frozen there, a second export of the same checkpoint follows it
    # instead of starting another, and both followers lose their connection and reconnect
    first = Cli(cfg, name)
    pid = box_exporter(remote, "final")
    os.kill(pid, signal.SIGSTOP)
    stopped_pids.append(pid)
    second = Cli(cfg, name, "--checkpoint", "final")
    wait_for(lambda: second.said(f"an export of final is already running there (pid {pid}): following it"), timeout=120)
    assert sshd.drop_sessions() > 0
    os.kill(pid, signal.SIGCONT)
    rc, out, err = first.finish()
    assert rc == 0, err
    assert "exporting on the box" in err and "reconnected; the export went on" in err
    view = json.loads(out)
    box_out = remote / layout.EXPORT_DIR / "final"
    assert view["host"] == "gpu-box" and view["remote_path"] == str(box_out) and view["brought"] == ["merged"]
    assert view["merged"]["ok"] and view["merged"]["max_abs_diff"] <= view["merged"]["tolerance"]
    rc, out2, err2 = second.finish()
    assert rc == 0, err2
    assert "merged model already exported for this adapter: reused" in err2  # after following: its own, reusing

    # what came home is the box's export, file for file; nothing half-written is left
    here = layout.export_dir(local, "final")
    assert sorted(p.name for p in here.iterdir()) == sorted([layout.LOG, layout.RECORD, layout.MERGED])
    box_files = sorted(p.relative_to(box_out / layout.MERGED) for p in (box_out / layout.MERGED).rglob("*") if p.is_file())
    assert box_files and any(str(p).endswith(".safetensors") for p in box_files)
    assert box_files == sorted(p.relative_to(here / layout.MERGED) for p in (here / layout.MERGED).rglob("*") if p.is_file())
    for rel in box_files:
        assert (here / layout.MERGED / rel).read_bytes() == (box_out / layout.MERGED / rel).read_bytes(), rel
    assert json.loads((here / layout.RECORD).read_text()) == json.loads((box_out / layout.RECORD).read_text())
    # the box used the run's own python, the one its trainer ran with (box.json)
    assert json.loads((local / "box.json").read_text())["python"] == sys.executable

    # ctrl+c stops the following, not the export: it goes on on the box, and the next export follows it
    third = Cli(cfg, name, "--checkpoint", "2")
    pid = box_exporter(remote, "checkpoint-2")
    os.kill(pid, signal.SIGSTOP)
    stopped_pids.append(pid)
    wait_for(lambda: third.said("exporting on the box"), timeout=60)
    third.proc.send_signal(signal.SIGINT)
    rc, _, err = third.finish()
    assert rc == 130
    assert json.loads(err.strip().splitlines()[-1])["error"] == (
        f"left exporting {name} checkpoint-2 on gpu-box (pid {pid}): `zelda-tui export {name} "
        "--checkpoint checkpoint-2` again follows it and brings it home")
    assert runs.pid_alive(pid)
    fourth = Cli(cfg, name, "--checkpoint", "checkpoint-2")
    wait_for(lambda: fourth.said("already running there"), timeout=120)
    os.kill(pid, signal.SIGCONT)
    rc, out, err = fourth.finish()
    assert rc == 0, err
    assert (layout.export_dir(local, "checkpoint-2") / layout.MERGED / "config.json").is_file()

    # this disk too small for what is asked: one line with the sizes before anything comes home, and
    # the export stays on the box (a 64 KB tmpfs over the run's export/ in a private mount namespace)
    export_root = local / layout.EXPORT_DIR
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {export_root}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    cli = (f"mount -t tmpfs -o size=64k tmpfs {export_root} && exec {sys.executable} -m zelda_tui export {name} "
           f"--checkpoint final --config {cfg}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", cli], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("zelda-tui: error: not enough disk here to bring the export home: it needs "), line
    assert line.endswith(f"free under {export_root}; it stays on gpu-box in {box_out} (free some space and export "
                         "again: nothing is redone)"), line
    assert (here / layout.MERGED / "config.json").is_file()  # the real disk: what came home before is untouched
