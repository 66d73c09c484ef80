"""`instances enforce`: the budget rules applied to tracked instances, destroying through the
provider API (a local replay of Vast's responses)."""

from __future__ import annotations

import json
import time
from pathlib import Path


from tests.backends.replay_server import ReplayServer, Reply
from tests.conftest import run_cli
from zelda_tui.core import runs
from zelda_tui.services import build_services

from .test_offers_cli import KEY, workspace



def track(cfg: Path, iid: str, hours_ago: float, ssh: tuple[str, int]) -> None:
    services = build_services(cfg)
    try:
        services.store.instance_add({"key": f"vast:{iid}", "provider": "vast", "instance_id": iid, "offer": "vast:1",
                                     "gpu_name": "A100", "num_gpus": 1, "dph_total": 2.0,
                                     "started": time.time() - hours_ago * 3600, "ended": None, "state": "running",
                                     "ssh_host": ssh[0], "ssh_port": ssh[1]})
    finally:
        services.close()


def remote_run(cfg: Path, name: str, host: str, state: str, finished_ago_min: float | None) -> None:
    run_dir = cfg.parent / "runs" / name
    run_dir.mkdir(parents=True)
    finished = time.time() - finished_ago_min * 60 if finished_ago_min is not None else None
    runs.write_status(run_dir, runs.RunStatus(state=state, pid=1, finished=finished, heartbeat=finished or time.time()))
    services = build_services(cfg)
    try:
        services.store.run_upsert(name, str(run_dir), host, "small", 0, 1, state, f"/opt/training/models/{name}")
    finally:
        services.close()


def test_enforce_destroys_past_max_runtime_and_idle_after_the_last_run(small_ws: Path):
    with ReplayServer() as server:
        for iid in ("101", "102", "103"):
            server.route("DELETE", f"/api/v0/instances/{iid}/", Reply.file("vast/destroy_instance.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        with open(cfg, "a") as fh:
            fh.write('\n[budget]\nmax_runtime_hours = 24\non_idle = "destroy"\n\n[monitoring]\ngpu_idle_shutdown_minutes = 30\n')
        track(cfg, "101", 30, ("ssh1.vast.ai", 1001))   # held past 24 h
        track(cfg, "102", 5, ("ssh2.vast.ai", 1002))    # its run ended 45 min ago
        track(cfg, "103", 5, ("ssh3.vast.ai", 1003))    # its run is still training
        remote_run(cfg, "r102", "root@ssh2.vast.ai:1002", "completed", 45)
        remote_run(cfg, "r103", "root@ssh3.vast.ai:1003", "running", None)

        dry = run_cli("instances", "enforce", "--dry-run", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert dry.returncode == 0, dry.stderr
        planned = {r["key"]: r for r in json.loads(dry.stdout)}
        assert set(planned) == {"vast:101", "vast:102"} and not any(r["destroyed"] for r in planned.values())
        assert "past budget.max_runtime_hours = 24" in planned["vast:101"]["reason"]
        assert "idle 45 min since its last run r102 ended (completed)" in planned["vast:102"]["reason"]
        assert not server.received("DELETE")

        res = run_cli("instances", "enforce", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert res.returncode == 0, res.stderr
        assert "destroyed vast:101" in res.stdout and "destroyed vast:102" in res.stdout and "103" not in res.stdout
        assert sorted(r.path for r in server.received("DELETE")) == ["/api/v0/instances/101/", "/api/v0/instances/102/"]
        again = run_cli("instances", "enforce", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert "nothing to destroy" in again.stdout


def test_enforce_leaves_idle_instances_alone_when_on_idle_is_alert(small_ws: Path):
    with ReplayServer() as server:
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        with open(cfg, "a") as fh:
            fh.write('\n[budget]\nmax_runtime_hours = 24\non_idle = "alert"\n')
        track(cfg, "102", 5, ("ssh2.vast.ai", 1002))
        remote_run(cfg, "r102", "root@ssh2.vast.ai:1002", "completed", 300)
        res = run_cli("instances", "enforce", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert res.returncode == 0 and json.loads(res.stdout) == [] and not server.received("DELETE")


def test_an_eval_on_the_box_counts_as_work(small_ws: Path):
    """A run that ended long ago whose box still evaluates its checkpoints ([eval] during_training,
    `eval run`) is not idle; a generator silent past WORKER_STALE_S (it died without a word) no longer
    holds the box, and the idle time counts from its last heartbeat."""
    from zelda_tui.core import atomic, eval_worker, evals

    with ReplayServer() as server:
        for iid in ("201", "202"):
            server.route("DELETE", f"/api/v0/instances/{iid}/", Reply.file("vast/destroy_instance.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        with open(cfg, "a") as fh:
            fh.write('\n[budget]\non_idle = "destroy"\n\n[monitoring]\ngpu_idle_shutdown_minutes = 30\n')
        for iid, name, heartbeat_ago_s in (("201", "r201", 5.0), ("202", "r202", 45 * 60.0)):
            track(cfg, iid, 5, (f"ssh{iid}.vast.ai", int(iid)))
            remote_run(cfg, name, f"root@ssh{iid}.vast.ai:{iid}", "completed", 45)
            worker = {"state": "generating", "mode": "after", "pid": 7, "checkpoint": "checkpoint-40", "done": 3,
                      "total": 40, "heartbeat": time.time() - heartbeat_ago_s}
            atomic.write_text(cfg.parent / "runs" / name / evals.EVALS_DIR / "held_out" / eval_worker.WORKER_FILE,
                              json.dumps(worker))
        dry = run_cli("instances", "enforce", "--dry-run", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY})
        assert dry.returncode == 0, dry.stderr
        assert {r["key"] for r in json.loads(dry.stdout)} == {"vast:202"}
        listed = {r["name"]: r for r in json.loads(run_cli("train", "list", "--json", "--config", str(cfg)).stdout)}
        assert listed["r201"]["evals"] == "held_out: evaluating checkpoint-40 (3/40)"
        assert listed["r202"]["evals"].startswith("held_out: eval silent for 45 min")
