"""Recovering a lost run onto a rented box (#17.3-4): the offer comes from the local replay of Vast's API,
whose recorded answer for the new instance has its SSH endpoint pointed at a second real sshd on
127.0.0.1 (box B). `train recover --yes` rents it, waits for its SSH, uploads the logs and the newest
checkpoint safe here and starts the trainer there; `[recovery] auto` does the same by itself while the
run is followed, within the budget and `max_recoveries`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from tests.conftest import run_cli
from zelda_tui.core import runs
from zelda_tui.core.train_config import load_run_config
from zelda_tui.services import build_services
from zelda_tui.services.recovery import HISTORY

from .sshd import Sshd
from .test_checkpoint_sync import checkpoint, files
from .test_run_watch import KEY, RUN, remote_run, running, trainer, vast_says, wait, workspace  # noqa: F401

OFFER = "39185351"  # the cheapest 1 x A100 SXM4 of the recorded search
NEW = str(fixture_json("vast/create_instance.json")["new_contract"])
ENV = {"VAST_API_KEY": KEY, "VULTR_API_KEY": ""}
RECOVERY_S = 120.0  # renting box B and moving the run there: ~45 s measured at load 5-7 on 2 cores, mostly
# the trainer code (127 files) uploaded one at a time, each verified by its own exec on the box


@pytest.fixture(autouse=True)
def vast_key(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def boxes(tmp_path: Path):
    """Box A (the run's, killed by the test) and box B (what the rented instance answers on)."""
    a, b = Sshd.create(tmp_path / "sshd-a"), Sshd.create(tmp_path / "sshd-b")
    a.start()
    b.start()
    yield a, b
    a.stop()
    b.stop()


def rentable(server: ReplayServer, b: Sshd) -> None:
    """Vast's offers; renting OFFER makes instance NEW, whose recorded `show` answer (running) has its
    SSH endpoint pointed at box B."""
    server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
    server.route("PUT", f"/api/v0/asks/{OFFER}/", Reply.file("vast/create_instance.json"))
    shown = fixture_json("vast/show_instance.json")
    shown["instances"].update(id=int(NEW), actual_status="running", ssh_host="127.0.0.1", ssh_port=b.port)
    server.route("GET", f"/api/v0/instances/{NEW}/", Reply.json(shown))


def lost_run(small_ws: Path, a: Sshd, b: Sshd, server: ReplayServer, pid: int, budget: str, recovery: str = "",
             lose: bool = True) -> Path:
    """A remote run on box A (a 1 x A100 SXM4 Vast instance, $0.70/h, an hour old) with its logs and
    checkpoint-3 safe here (`pid`: its trainer); with `lose` box A is stopped and the run is lost. A rented box is reached as
    root@127.0.0.1:port with box B's key (the ssh config's `Host 127.0.0.1`); the trainer's python there
    is this one."""
    rentable(server, b)
    vast_says(server, running())
    text = small_ws.read_text().replace('base = "local/tiny"', 'base = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"')
    small_ws.write_text(text + f'\n[phases.0]\nmix = "small"\n\n[budget]\n{budget}\n')
    cfg = workspace(small_ws, a, f"{server.url}/api/v0", lost_after_minutes=0.01)
    text = cfg.read_text().replace("[remote]\n", f'[remote]\npython = "{sys.executable}"\n', 1)
    cfg.write_text(text.replace("lost_after_minutes = 0.01\n", f"lost_after_minutes = 0.01\n{recovery}\n", 1))
    with open(a.root / "ssh_config", "a") as fh:
        fh.write(f"\nHost 127.0.0.1\n    IdentityFile {b.root}/client_key\n")
    services = build_services(cfg)
    try:
        remote, local = remote_run(services, a, small_ws.parent, pid, dph=0.7)
        for d in (remote, local):  # what the box needs to start the trainer: a CPU run and its mix
            run_cfg = load_run_config(d)
            run_cfg.train.device = "cpu"
            run_cfg.save(d)
            (d / runs.DATA_DIR).mkdir(exist_ok=True)
            for name in ("train.jsonl", "eval.jsonl"):
                (d / runs.DATA_DIR / name).write_text('{"instruction": "i", "output": "o"}\n')
            (d / runs.DATA_DIR / "eval_sources.txt").write_text("alpha\n")
            (d / runs.DATA_DIR / "metadata.json").write_text("{}\n")
        (remote / runs.TRAIN_LOG).write_text("box A: step 1\nbox A: step 2\nbox A: step 3\n")
        runs.append_metric(remote, "train", step=3, loss=1.5)
        checkpoint(remote, 3)
        sync = services.hosts.ssh("gpu-box", str(remote)).checkpoint_sync(local)
        assert sync.run_once().step == 3
        assert services.runs.status(RUN).state == "running"  # its logs mirrored here
        if lose:
            vast_says(server, Reply.error(404, {"error": "no_such_instance"}))  # preempted and reclaimed
            a.stop()
            assert services.runs.status(RUN).state == "lost"
    finally:
        services.close()
    return cfg


def box_b_run(tmp_path: Path) -> Path:
    """Where the recovered run lives on box B: the same training_dir layout (both boxes are this machine,
    so box A's copy is removed when A dies, as its disk would be)."""
    return tmp_path / "box" / "models" / RUN


def stop_trainers(tmp_path: Path) -> None:
    """The trainer started on box B (it fails soon: the run's base model is not on this machine)."""
    status = runs.read_status(box_b_run(tmp_path))
    if status and status.pid and runs.pid_alive(status.pid):
        os.kill(status.pid, signal.SIGKILL)


def forget_box_a(tmp_path: Path) -> None:
    """Box A's disk goes with it: nothing of the run is left in the shared training dir."""
    import shutil

    shutil.rmtree(box_b_run(tmp_path))


def test_recover_rents_the_offer_and_goes_on_on_that_box(boxes, small_ws: Path, tmp_path: Path, trainer: int):
    a, b = boxes
    with ReplayServer() as server:
        cfg = lost_run(small_ws, a, b, server, trainer, "max_total_usd = 500.0")
        forget_box_a(tmp_path)
        try:
            res = run_cli("train", "recover", RUN, "--yes", "--config", str(cfg), env=ENV)
            assert res.returncode == 0, res.stderr[-3000:]
            assert f"on vast:{OFFER}: 1 x A100 SXM4" in res.stdout and "$0.695/h" in res.stdout
            assert f"renting vast:{OFFER} at $0.695/h" in res.stderr
            assert f"recovered {RUN} on root@127.0.0.1:{b.port} (vast:{NEW})" in res.stdout
            assert "from checkpoint-3" in res.stdout
            assert len(server.received("PUT", f"/api/v0/asks/{OFFER}/")) == 1  # rented once
            # on box B: the logs as they were, the checkpoint byte for byte, the trainer started
            there, local = box_b_run(tmp_path), small_ws.parent / "runs" / RUN
            assert (there / runs.TRAIN_LOG).read_text().startswith("box A: step 1\nbox A: step 2\nbox A: step 3\n")
            assert files(there / runs.CHECKPOINTS / "checkpoint-3") == files(local / runs.CHECKPOINTS / "checkpoint-3")
            started = wait(lambda: runs.read_status(there))
            assert started.pid and started.state in ("starting", "running", "failed")
            assert runs.read_remote_marker(local) == {"host": f"root@127.0.0.1:{b.port}", "remote_dir": str(there)}
            move = json.loads((local / HISTORY).read_text())
            assert move["left"] == "gpu-box" and move["left_instance"] == "vast:7777001" and move["from_step"] == 3
            assert move["instance"] == f"vast:{NEW}" and move["left_spent_usd"] == pytest.approx(0.7, abs=0.02)
            listed = json.loads(run_cli("instances", "list", "--json", "--config", str(cfg), env=ENV).stdout)
            new = next(i for i in listed["instances"] if i["key"] == f"vast:{NEW}")
            assert (new["ssh_host"], new["ssh_port"], new["state"]) == ("127.0.0.1", b.port, "running")
            status = run_cli("train", "status", RUN, "--config", str(cfg), env=ENV).stdout
            said = next(line.strip() for line in status.splitlines() if line.strip().startswith("boxes: "))
            assert said.startswith("boxes: gpu-box (started here, ") and ", $0.70) → root@127.0.0.1:" in said, said
            assert "(from checkpoint-3, " in said
        finally:
            stop_trainers(tmp_path)


def test_a_changed_plan_rents_nothing(boxes, small_ws: Path, trainer: int):
    """The offer confirmed is the one rented, or none: a plan that now picks another asks again."""
    from zelda_tui.core.errors import ZeldaError

    a, b = boxes
    with ReplayServer() as server:
        cfg = lost_run(small_ws, a, b, server, trainer, "max_total_usd = 500.0")
        services = build_services(cfg)
        try:
            with pytest.raises(ZeldaError, match=f"the plan changed since it was shown \\(vast:1 → vast:{OFFER}\\)"):
                services.recovery.recover(RUN, offer="vast:1")
        finally:
            services.close()
        assert not server.received("PUT")


def test_one_recovery_at_a_time(boxes, small_ws: Path, trainer: int):
    """A recovery under way (R in the TUI, another terminal, [recovery] auto) holds the run: the plan says
    so and a second recovery rents nothing."""
    from zelda_tui.core import locks
    from zelda_tui.core.errors import ZeldaError
    from zelda_tui.services.recovery import LOCK

    a, b = boxes
    with ReplayServer() as server:
        cfg = lost_run(small_ws, a, b, server, trainer, "max_total_usd = 500.0")
        services = build_services(cfg)
        try:
            with locks.exclusive(small_ws.parent / "runs" / RUN / LOCK):  # the other recovery
                plan = services.recovery.plan(RUN)
                assert plan.problems == [f"a recovery of it is under way (PID {os.getpid()}): wait for it"]
                with pytest.raises(ZeldaError, match="a recovery of it is under way .* nothing rented"):
                    services.recovery.recover(RUN, offer=f"vast:{OFFER}")
            assert services.recovery.plan(RUN).problems == []  # its end frees the run
        finally:
            services.close()
        assert not server.received("PUT")


def follow(services, alerts: list[str], links: list[str] | None = None) -> tuple[threading.Thread, threading.Event]:
    """A follower of the run, as the TUI's: its alerts (and its link's states, into `links`) recorded."""
    stop = threading.Event()
    on_state = (lambda s: links.append(s.state)) if links is not None else None
    mirror = services.runs.mirror(RUN, on_state=on_state, on_alert=alerts.append)
    thread = threading.Thread(target=mirror.follow, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def test_auto_recovers_a_followed_run_within_its_limit(boxes, small_ws: Path, tmp_path: Path, trainer: int):
    """[recovery] auto: box A dies while followed; the run goes on on a rented box B without a question,
    said in an alert with the numbers; the follower moves on to box B. Box B dying too is past
    max_recoveries = 1: the run stays lost, with the reason."""
    a, b = boxes
    with ReplayServer() as server:
        cfg = lost_run(small_ws, a, b, server, trainer, "max_total_usd = 500.0", "auto = true\nmax_recoveries = 1",
                       lose=False)
        services = build_services(cfg)
        try:
            alerts: list[str] = []
            links: list[str] = []
            thread, stop = follow(services, alerts, links)
            wait(lambda: "connected" in links)  # followed: its link to box A is up (lost_run left status.json here)
            vast_says(server, Reply.error(404, {"error": "no_such_instance"}))
            a.stop()
            forget_box_a(tmp_path)
            wait(lambda: any("recovering automatically" in t for t in alerts), timeout=60)  # found lost, plan made
            done = wait(lambda: next((t for t in alerts if t.startswith("recovered ") or "stays lost" in t), None),
                        timeout=RECOVERY_S)  # the move itself, whichever way it ends
            assert done.startswith(f"recovered {RUN} on root@127.0.0.1:{b.port} (vast:{NEW})"), alerts
            said = next(t for t in alerts if "recovering automatically" in t)
            assert said.startswith(f"{RUN}: recovering automatically (1 of at most 1): vast:{OFFER} (1 x A100 SXM4, "
                                   "$0.695/h, ~$"), said
            assert "of the budget left) from checkpoints/checkpoint-3" in said
            assert any("its box gpu-box is lost" in t for t in alerts)
            thread.join(60)  # the follower of box A ends: the run is on box B now
            assert not thread.is_alive()
            assert len(server.received("PUT")) == 1
            assert services.store.run_row(RUN)["host"] == f"root@127.0.0.1:{b.port}"

            # box B dies too: past max_recoveries, it stays lost and says why; nothing more is rented
            alerts.clear()
            wait(lambda: runs.read_status(box_b_run(tmp_path)))
            stop_trainers(tmp_path)
            vast_says_new_gone(server)
            b.stop()
            thread, stop = follow(services, alerts)
            why = wait(lambda: next((t for t in alerts if "stays lost" in t), None), timeout=60)
            assert why == (f"{RUN}: stays lost: recovered 1 time(s) already, [recovery] max_recoveries = 1; "
                           f"`zelda-tui train recover {RUN}` goes on by hand"), alerts
            assert len(server.received("PUT")) == 1
            stop.set()
            thread.join(20)
        finally:
            stop_trainers(tmp_path)
            services.close()


def vast_says_new_gone(server: ReplayServer) -> None:
    server.route("GET", f"/api/v0/instances/{NEW}/", Reply.error(404, {"error": "no_such_instance"}))
