"""A run survives losing its box (#17), end to end on two loopback sshd "boxes" and the real tiny-model
trainer: box A dies (trainer, sshd and disk) mid-run; the followed run is marked lost; `train recover
--host box-b` goes on from the last checkpoint that came home, and the losses after the resume equal
those of an uninterrupted run with the same seed."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

from tests.conftest import run_cli
from tests.remote.sshd import Sshd
from zelda_tui.backends import checkpoint_sync
from zelda_tui.core import runs
from zelda_tui.services import build_services

from .conftest import make_workspace, wait_for
from .test_runs import finished, start, train_losses

STEPS, EVERY = 16, 4


def two_boxes(root: Path) -> tuple[Sshd, Sshd, Path, Path]:
    """Two sshd on 127.0.0.1 and one ssh_config / known_hosts naming both (box-a, box-b)."""
    a, b = Sshd.create(root / "sshd-a"), Sshd.create(root / "sshd-b")
    a.start()
    b.start()
    config, known = root / "ssh_config", root / "known_hosts"
    config.write_text("".join(f"Host {name}\n    HostName 127.0.0.1\n    Port {s.port}\n    User {getpass.getuser()}\n"
                              f"    IdentityFile {s.root}/client_key\n" for name, s in (("box-a", a), ("box-b", b))))
    known.write_text("".join(f"[127.0.0.1]:{s.port} {(s.root / 'host_ed25519.pub').read_text().rsplit(' ', 1)[0]}\n"
                             for s in (a, b)))
    return a, b, config, known


def losses_after_resume(run_dir: Path) -> dict[int, float]:
    """Train losses logged after the last `resumed` event (the part the recovered box trained)."""
    out: dict[int, float] = {}
    for m in runs.read_metrics(run_dir):
        if m.get("event") == "status" and m.get("state") == "resumed":
            out = {}
        elif m.get("event") == "train":
            out[m["step"]] = m["loss"]
    return out


def test_a_lost_box_is_recovered_on_another_and_trains_on_identically(tmp_path: Path, tiny_model: Path):
    a, b, ssh_config, known = two_boxes(tmp_path)
    trainer_pid = None
    try:
        cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=STEPS, every=EVERY)
        box = tmp_path / "ws" / "box"
        with open(cfg, "a") as fh:
            fh.write(f'\n[remote]\ntraining_dir = "{box}"\npython = "{sys.executable}"\nssh_config = "{ssh_config}"\n'
                     f'known_hosts = "{known}"\n\n[recovery]\nlost_after_minutes = 0.05\n')
        ref_dir = start(make_workspace(tmp_path / "ref", tiny_model, max_steps=STEPS, every=EVERY))  # uninterrupted

        res = run_cli("train", "start", "--phase", "0", "--remote", "box-a", "--json", "--config", str(cfg))
        assert res.returncode == 0, res.stderr
        name = json.loads(res.stdout)["name"]
        services = build_services(cfg)
        local = services.runs.dir(name)
        alerts: list[str] = []
        stop = threading.Event()
        follower = threading.Thread(target=services.runs.mirror(name, on_alert=alerts.append).follow, args=(stop,),
                                    daemon=True)
        follower.start()
        try:
            # box A dies (trainer, sshd, its disk) once a checkpoint is safe here; the trainer is frozen
            # (SIGSTOP) at its first checkpoint so a fast machine cannot finish the run first
            remote = box / "models" / name
            # (after its "checkpoint" metric too: that line is what sends the copier; a trainer frozen between
            # the checkpoint dir and that line would leave nothing to copy)
            wait_for(lambda: runs.checkpoints(remote) and any(m.get("event") == "checkpoint"
                                                               for m in runs.read_metrics(remote)), every=0.02)
            status = runs.read_status(remote)
            assert status.state != "completed", "the run finished before box A could be frozen: raise STEPS"
            trainer_pid = status.pid
            os.kill(trainer_pid, signal.SIGSTOP)
            wait_for(lambda: checkpoint_sync.synced(local), every=0.02)
            os.kill(trainer_pid, signal.SIGKILL)
            a.stop()
            shutil.rmtree(box)
            home = checkpoint_sync.synced(local)[-1][0]
            lost = wait_for(lambda: (v := services.runs.info(local)).state == "lost" and v, timeout=60)
            assert lost.home_checkpoint == f"checkpoints/checkpoint-{home}"
            # the run is indexed lost just before the alert is said: wait for it, not for the state alone
            assert wait_for(lambda: any("box-a is lost" in text for text in alerts), timeout=10), alerts
        finally:
            stop.set()
            follower.join(20)
            services.close()

        res = run_cli("train", "recover", name, "--host", "box-b", "--json", "--config", str(cfg))
        assert res.returncode == 0, res.stderr[-3000:]
        done = json.loads(res.stdout)
        assert done["host"] == "box-b" and done["from_step"] == home
        tail = run_cli("tail", name, "--config", str(cfg))  # follows box B to the end
        assert tail.returncode == 0, tail.stderr[-3000:]
        assert runs.read_status(local).state == "completed"
        assert f"resuming from checkpoint-{home}" in (box / "models" / name / runs.TRAIN_LOG).read_text()

        assert wait_for(lambda: finished(ref_dir)).state == "completed"
        ref, after = train_losses(ref_dir), losses_after_resume(local)
        # one config, one seed: box A trained exactly as the run here did until it was lost (the LoRA
        # init is seeded too), so what box B trains next is compared with a run that started alike
        before = {m["step"]: m["loss"] for m in runs.read_metrics(local) if m.get("event") == "train"
                  and m["step"] <= home}
        assert before and before == {s: ref[s] for s in before}, (before, ref)
        assert sorted(after) == list(range(home + 1, STEPS + 1))
        for step, loss in after.items():
            assert loss == ref[step] or abs(loss - ref[step]) <= 1e-3 * abs(ref[step]), (step, loss, ref[step])

        status = run_cli("train", "status", name, "--config", str(cfg)).stdout
        boxes = next(line.strip() for line in status.splitlines() if line.strip().startswith("boxes: "))
        assert re.fullmatch(rf"boxes: box-a \(started here, \w+\) → box-b \(from checkpoint-{home}, \w+\)", boxes), boxes
    finally:
        if trainer_pid and runs.pid_alive(trainer_pid):
            os.kill(trainer_pid, signal.SIGKILL)
        for status_file in tmp_path.glob("ws/box/models/*/status.json"):
            s = runs.read_status(status_file.parent)
            if s and s.pid and runs.RunState.of(s.state).is_live and runs.pid_alive(s.pid):
                os.kill(s.pid, signal.SIGKILL)
        a.stop()
        b.stop()
