"""While a remote run is followed: GPU idle → alert, then the configured action (destroy the tracked
instance behind the host, through the provider API replay); remote disk past the threshold → warning.

nvidia-smi is named by [monitoring] nvidia_smi; here a script on the box prints 0 % for each of
two GPUs (this machine has none to sample)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path


from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from tests.cli.test_offers_cli import KEY, workspace
from zelda_tui.services import build_services


NEW_ID = str(fixture_json("vast/create_instance.json")["new_contract"])


def watched_box(sshd, small_ws: Path, tmp_path: Path, server: ReplayServer, gpus: int, monitoring: str,
                ) -> tuple[Path, Path, Path]:
    """A remote run r1 on the loopback box whose nvidia-smi reports `gpus` idle GPUs, tracked as instance
    NEW_ID behind the replay server; returns (config, the run's dir on the box, its local copy)."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + "printf '0\\n'\n" * gpus)
    smi.chmod(0o755)
    run_remote = tmp_path / "box" / "models" / "r1"
    run_remote.mkdir(parents=True)
    (run_remote / "status.json").write_text('{"state": "running", "pid": 1}')
    (run_remote / "train.log").write_text("step 1\n")
    cfg = workspace(small_ws, f"{server.url}/api/v0")
    with open(cfg, "a") as fh:
        fh.write(f"""
[remote]
training_dir = "{tmp_path / 'box'}"
ssh_config = "{sshd.root / 'ssh_config'}"
known_hosts = "{sshd.settings().known_hosts}"

[monitoring]
nvidia_smi = "{smi}"
{monitoring}
[budget]
on_idle = "destroy"
""")
    local = tmp_path / "ws" / "runs" / "r1"
    local.mkdir(parents=True)
    with build_services(cfg) as services:
        services.store.run_upsert("r1", str(local), "gpu-box", "m", 0, 1, "running", str(run_remote))
        services.store.instance_add({"key": f"vast:{NEW_ID}", "provider": "vast", "instance_id": NEW_ID,
                                     "offer": "vast:1", "gpu_name": "A100", "num_gpus": gpus, "dph_total": 1.5,
                                     "started": time.time() - 3600, "ended": None, "state": "running",
                                     "ssh_host": "127.0.0.1", "ssh_port": sshd.port})
    return cfg, run_remote, local


def follow_until(services, done: Callable[[list[str]], bool], timeout_s: float) -> tuple[list[str], bool]:
    """Follow r1 with the box watch until `done(alerts)`; returns the alerts and whether the follower
    was still running at that point (a failure inside a check must not end the following)."""
    alerts: list[str] = []
    stop = threading.Event()
    follower = threading.Thread(target=services.runs.mirror("r1", on_alert=alerts.append).follow, args=(stop,),
                                daemon=True)
    follower.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done(alerts):
        time.sleep(0.05)
    alive = follower.is_alive()
    stop.set()
    follower.join(10)
    return alerts, alive


def test_idle_gpu_alerts_then_destroys_the_tracked_instance(sshd, small_ws: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VAST_API_KEY", KEY)
    with ReplayServer() as server:
        server.route("DELETE", f"/api/v0/instances/{NEW_ID}/", Reply.file("vast/destroy_instance.json"))
        cfg, _, local = watched_box(sshd, small_ws, tmp_path, server, 2, """gpu_idle_threshold_percent = 5
gpu_idle_alert_minutes = 0.01
gpu_idle_shutdown_minutes = 0.04
disk_warning_percent = 0
check_every_s = 0.1
""")
        with build_services(cfg) as services:
            assert services.instances.for_host("gpu-box").key == f"vast:{NEW_ID}"
            alerts, _ = follow_until(services, lambda alerts: any("destroyed" in a for a in alerts), 20)
            assert server.received("DELETE"), alerts
            rows = {r["key"]: r for r in services.store.instance_rows()}
            assert rows[f"vast:{NEW_ID}"]["ended"] is not None
    disk = [a for a in alerts if "disk" in a]
    assert len(disk) == 1 and "gpu-box" in disk[0] and "warning at 0%" in disk[0]  # said once, not every tick
    idle = [a for a in alerts if "GPU idle" in a]
    assert idle[0].startswith("gpu-box: GPU idle (< 5%)") and "destroyed" not in idle[0]
    assert f"destroyed vast:{NEW_ID} (spent $1.50)" in idle[-1]
    assert (local / "train.log").read_text() == "step 1\n"


def test_a_failed_idle_destroy_keeps_following_and_is_tried_again(sshd, small_ws: Path, tmp_path: Path, monkeypatch):
    """The provider answers 503 to the first destroy (after its retries): the follower reports it, keeps
    following, and destroys at a later check; the instance is never marked done while it still bills."""
    monkeypatch.setenv("VAST_API_KEY", KEY)
    with ReplayServer() as server:
        server.route("DELETE", f"/api/v0/instances/{NEW_ID}/", *[Reply.error(503, {"msg": "try later"})] * 4,
                     Reply.file("vast/destroy_instance.json"))
        cfg, _, _ = watched_box(sshd, small_ws, tmp_path, server, 1, """gpu_idle_alert_minutes = 0.005
gpu_idle_shutdown_minutes = 0.01
check_every_s = 0.1
""")
        with build_services(cfg) as services:
            alerts, alive = follow_until(services, lambda alerts: any(" — destroyed " in a for a in alerts), 40)
            assert alive, alerts  # the failure did not end the following
            row = {r["key"]: r for r in services.store.instance_rows()}[f"vast:{NEW_ID}"]
    failed = [a for a in alerts if "could not destroy" in a]
    assert failed and "still billing" in failed[0] and "503" in failed[0] and "trying again" in failed[0]
    assert any(f"destroyed vast:{NEW_ID}" in a for a in alerts), alerts
    assert alerts.index(failed[0]) < max(i for i, a in enumerate(alerts) if " — destroyed " in a)
    assert len(server.received("DELETE")) == 5 and row["ended"] is not None and row["state"] == "destroyed"
