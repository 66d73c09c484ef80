"""A followed remote run (#17.1-2), through the services the TUI and `tail` use, against a real sshd
"box" this test owns (it kills it) and the local replay of Vast's API: checkpoints come home as the
trainer logs them; a box that stays unreachable, or that the provider says is gone, makes the run
`lost` (never `died`), and the instance's spend stops when the provider no longer knows it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from tests.conftest import run_cli
from zelda_tui.core import runs
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.train_config import RunConfig
from zelda_tui.screens.runs import summary_text
from zelda_tui.services import build_services
from zelda_tui.services.views import InstanceRow

from .sshd import Sshd
from .test_checkpoint_sync import checkpoint

KEY = "replay-key"
INSTANCE = "7777001"
RUN = "tiny_20260101T000000Z"


@pytest.fixture
def trainer():
    """A process standing in for the trainer on the box (so the box says it runs)."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def box(tmp_path: Path):
    server = Sshd.create(tmp_path / "sshd-a")
    server.start()
    yield server
    server.stop()


def workspace(small_ws: Path, box: Sshd, vast_url: str, lost_after_minutes: float) -> Path:
    with open(small_ws, "a") as fh:
        fh.write(f"""
[remote]
training_dir = "{small_ws.parent / 'box'}"
ssh_config = "{box.root / 'ssh_config'}"
known_hosts = "{box.settings().known_hosts}"

[recovery]
lost_after_minutes = {lost_after_minutes}

[providers.vast]
base_url = "{vast_url}"
""")
    return small_ws


def remote_run(services, box: Sshd, ws: Path, pid: int = 999_999, dph: float = 2.0) -> tuple[Path, Path]:
    """A run on the box (status running, a heartbeat) indexed as the CLI's `train start --remote` leaves
    it, and the tracked Vast instance behind the box's endpoint."""
    remote, local = ws / "box" / "models" / RUN, ws / "runs" / RUN
    for d in (remote, local):
        d.mkdir(parents=True)
        cfg = RunConfig(name=RUN)
        cfg.data.mix = "small"
        cfg.save(d)
    runs.write_status(remote, runs.RunStatus(state="running", pid=pid, step=3, max_steps=9, heartbeat=time.time()))
    runs.write_remote_marker(local, "gpu-box", str(remote))
    services.store.run_upsert(RUN, str(local), "gpu-box", "small", 0, pid, "running", str(remote))
    services.store.instance_add(InstanceRow(key=f"vast:{INSTANCE}", provider="vast", instance_id=INSTANCE, offer="vast:39185351",
                                            gpu_name="A100 SXM4", num_gpus=1, dph_total=dph, started=time.time() - 3600,
                                            state="running", ssh_host="127.0.0.1", ssh_port=box.port).to_json())
    return remote, local


def vast_says(server: ReplayServer, reply: Reply) -> None:
    server.route("GET", f"/api/v0/instances/{INSTANCE}/", reply)


def running() -> Reply:
    shown = fixture_json("vast/show_instance.json")
    shown["instances"].update(id=int(INSTANCE), actual_status="running")
    return Reply.json(shown)


def follow(services, alerts: list[str]) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    mirror = services.runs.mirror(RUN, on_alert=alerts.append)
    thread = threading.Thread(target=mirror.follow, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def wait(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_checkpoints_come_home_then_the_box_dies_and_the_run_is_lost(box: Sshd, small_ws: Path, monkeypatch,
                                                                      trainer: int):
    monkeypatch.setenv("VAST_API_KEY", KEY)
    with ReplayServer() as server:
        vast_says(server, running())
        cfg = workspace(small_ws, box, f"{server.url}/api/v0", lost_after_minutes=0.05)  # 3 s
        services = build_services(cfg)
        try:
            remote, local = remote_run(services, box, small_ws.parent, trainer)
            alerts: list[str] = []
            thread, stop = follow(services, alerts)
            checkpoint(remote, 3)
            runs.append_metric(remote, "checkpoint", step=3, path="checkpoints/checkpoint-3")
            view = wait(lambda: (v := services.runs.info(local)).home_checkpoint and v)
            assert view.home_checkpoint == "checkpoints/checkpoint-3" and view.state == "running"
            checkpoint(remote, 6, complete=False)  # the box dies while writing checkpoint-6
            box.stop()
            lost = wait(lambda: (v := services.runs.info(local)).state == "lost" and v)
            assert lost.home_checkpoint == "checkpoints/checkpoint-3"
            said = next(a for a in alerts if "is lost" in a)
            assert f"{RUN}: its box gpu-box is lost (no SSH for" in said and "checkpoints/checkpoint-3" in said
            assert f"zelda-tui train recover {RUN}" in said
            stop.set()
            thread.join(20)
        finally:
            services.close()
        listed = run_cli("train", "list", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert listed.returncode == 0, listed.stderr
        row = next(r for r in json.loads(listed.stdout) if r["name"] == RUN)
        assert row["state"] == "lost" and row["home_checkpoint"] == "checkpoints/checkpoint-3"
        status = run_cli("train", "status", RUN, "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert status.returncode == 1, status.stderr  # a lost run is not a success
        said = next(line.strip() for line in status.stdout.splitlines() if line.strip().startswith("lost: "))
        assert said == (f"lost: its box gpu-box is gone; safe here: checkpoints/checkpoint-3; "
                        f"`zelda-tui train recover {RUN}` goes on elsewhere")
        shown = summary_text(lost)  # the Runs screen's line for the selected run
        assert "[b red]lost[/]" in shown and "safe here checkpoint-3" in shown and "train recover" in shown
        assert not (local / runs.CHECKPOINTS / "checkpoint-6").exists()
        # the box answers again (a network outage, not a dead box): no longer lost
        box.start()
        back = run_cli("train", "status", RUN, "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert json.loads(back.stdout)["state"] != "lost", back.stderr


def test_the_provider_saying_gone_makes_it_lost_at_once_and_stops_the_spend(box: Sshd, small_ws: Path, monkeypatch):
    monkeypatch.setenv("VAST_API_KEY", KEY)
    with ReplayServer() as server:
        vast_says(server, running())
        cfg = workspace(small_ws, box, f"{server.url}/api/v0", lost_after_minutes=60)  # SSH alone: not for an hour
        services = build_services(cfg)
        try:
            remote, local = remote_run(services, box, small_ws.parent)
            alerts: list[str] = []
            thread, stop = follow(services, alerts)
            wait(lambda: services.runs.info(local).synced_at)
            vast_says(server, Reply.error(404, {"error": "no_such_instance"}))  # preempted and reclaimed
            box.stop()
            lost = wait(lambda: (v := services.runs.info(local)).state == "lost" and v, timeout=30)
            assert any(f"vast:{INSTANCE} is gone (the provider says so)" in a for a in alerts), alerts
            spent = lost.spent_usd
            assert spent is not None and spent == pytest.approx(2.0, abs=0.05)  # an hour at $2/h, then it stopped
            time.sleep(1.5)
            assert services.runs.info(local).spent_usd == spent  # the spend no longer counts
            assert services.instances.spend().spent_usd == pytest.approx(spent, abs=0.01)
            stop.set()
            thread.join(20)
        finally:
            services.close()


def test_an_exited_instance_makes_its_run_lost_but_keeps_billing_until_destroyed(box: Sshd, small_ws: Path,
                                                                                    monkeypatch, trainer: int):
    """Vast `exited`: the instance exists (its disk bills) but runs nothing: its run is lost, its spend still
    counts, and `instances destroy` still works on it."""
    monkeypatch.setenv("VAST_API_KEY", KEY)
    with ReplayServer() as server:
        shown = fixture_json("vast/show_instance.json")
        shown["instances"].update(id=int(INSTANCE), actual_status="exited")
        vast_says(server, Reply.json(shown))
        cfg = workspace(small_ws, box, f"{server.url}/api/v0", lost_after_minutes=60)
        services = build_services(cfg)
        try:
            remote, local = remote_run(services, box, small_ws.parent, trainer)
            assert services.runs.status(RUN).state == "running"  # synced just now
            box.stop()
            view = services.runs.status(RUN)  # unreachable a moment after a sync: the provider decides
            assert view.state == "lost" and view.spent_usd == pytest.approx(2.0, abs=0.05)
            inst = services.instances.rows(refresh=False)[0]
            assert inst.state == "exited" and inst.ended is None and inst.endpoint == f"127.0.0.1:{box.port}"
            vast_says(server, running())  # ... and a box that is merely unreachable a moment is not lost
            services.store.instance_update(inst.key, state="running")
            runs.write_status(local, runs.read_status(remote))
            services.store.run_upsert(RUN, str(local), "gpu-box", "small", 0, trainer, "running", str(remote))
            with pytest.raises(ZeldaError, match="cannot connect"):
                services.runs.status(RUN)
        finally:
            services.close()


# --- recover (#17.3): the plan, the budget and no fitting offer -----------------------------------------
def lost_run_with_offers(small_ws: Path, box: Sshd, server: ReplayServer, budget: str) -> Path:
    """A lost run (its box stopped) whose instance was a 1 x A100 SXM4 on Vast, and Vast's offers replayed."""
    server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
    vast_says(server, Reply.error(404, {"error": "no_such_instance"}))
    text = small_ws.read_text().replace('base = "local/tiny"', 'base = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"')
    small_ws.write_text(text + f'\n[phases.0]\nmix = "small"\n\n[budget]\n{budget}\n')
    cfg = workspace(small_ws, box, f"{server.url}/api/v0", lost_after_minutes=0.01)
    services = build_services(cfg)
    try:
        remote, local = remote_run(services, box, small_ws.parent, dph=0.7)
        checkpoint(remote, 3)
        sync = services.hosts.ssh("gpu-box", str(remote)).checkpoint_sync(local)
        assert sync.run_once().step == 3
        box.stop()
        assert services.runs.status(RUN).state == "lost"
    finally:
        services.close()
    return cfg


def test_a_recovery_that_would_pass_the_budget_is_refused_with_the_numbers(box: Sshd, small_ws: Path):
    with ReplayServer() as server:
        cfg = lost_run_with_offers(small_ws, box, server, "max_total_usd = 0.5")  # the lost box spent $0.70
        res = run_cli("train", "recover", RUN, "--yes", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert res.returncode == 1
        assert "resumes from checkpoints/checkpoint-3 (safe here, sha256 verified)" in res.stdout
        assert "on vast:39185351: 1 x A100 SXM4" in res.stdout and "$0.695/h" in res.stdout  # the cheapest fitting
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith(f"zelda-tui: error: {RUN} stays lost: vast:39185351 (the cheapest of ")
        assert "no budget left: $" in line and "spent of budget.max_total_usd $0.50" in line, line
        assert "raise budget.max_total_usd" in line
        assert not server.received("PUT")  # nothing rented
        listed = json.loads(run_cli("train", "list", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY}).stdout)
        assert listed[0]["state"] == "lost"


def test_no_offer_fits_the_run_stays_lost_with_a_clear_line(box: Sshd, small_ws: Path):
    with ReplayServer() as server:
        cfg = lost_run_with_offers(small_ws, box, server, "max_total_usd = 500.0")
        plan = run_cli("train", "recover", RUN, "--dry-run", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        got = json.loads(plan.stdout)
        assert got["query"] == 'gpu_name="A100 SXM4" num_gpus=1' and got["from_step"] == 3 and got["problems"] == []
        assert got["offer"]["offer"]["key"] == "vast:39185351"
        res = run_cli("train", "recover", RUN, "--yes", "--query", "gpu_name=B300 num_gpus=16", "--config", str(cfg),
                      env={"VAST_API_KEY": KEY})
        assert res.returncode == 1
        assert res.stderr.strip().splitlines()[-1].startswith(
            f"zelda-tui: error: {RUN} stays lost: no offer fits `gpu_name=B300 num_gpus=16`")
        assert "widen it with --query" in res.stderr and not server.received("PUT")


def test_a_run_dir_gone_from_a_box_that_answers_makes_the_run_lost(box: Sshd, small_ws: Path, monkeypatch, trainer: int):
    """The box answers but the run is not there (re-imaged behind the same address, its disk gone):
    the run cannot go on there, so it is lost at once, not left "running" with a red line."""
    import shutil

    monkeypatch.setenv("VAST_API_KEY", KEY)
    with ReplayServer() as server:
        vast_says(server, running())
        cfg = workspace(small_ws, box, f"{server.url}/api/v0", lost_after_minutes=60)  # SSH alone: not for an hour
        services = build_services(cfg)
        try:
            remote, local = remote_run(services, box, small_ws.parent, trainer)
            alerts: list[str] = []
            thread, stop = follow(services, alerts)
            wait(lambda: services.runs.info(local).synced_at)
            shutil.rmtree(remote)
            lost = wait(lambda: (v := services.runs.info(local)).state == "lost" and v, timeout=30)
            said = next(a for a in alerts if "is lost" in a)
            assert said.startswith(f"{RUN}: its box gpu-box is lost (its run dir is gone from the box)")
            assert f"zelda-tui train recover {RUN}" in said and lost.state == "lost"
            stop.set()
            thread.join(20)
        finally:
            services.close()
