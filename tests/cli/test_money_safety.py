"""Money: nothing rented without a record, no launch past the budget, every over-budget instance
destroyed (issue 12, items 1-3), through the real CLI against the local replay of Vast's API and a
real SQLite lock held by another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from zelda_tui.services import build_services

from .test_launch_cli import ENV, NEW_ID, OFFER, cli, serve
from .test_offers_cli import workspace

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


class StateLock:
    """Another process holding a write lock on state.sqlite (as a sqlite3 shell or a second app would)."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.release()


def track(cfg: Path, iid: str, hours_ago: float, dph: float = 2.0) -> None:
    with build_services(cfg) as services:
        services.store.instance_add({"key": f"vast:{iid}", "provider": "vast", "instance_id": iid, "offer": "vast:1",
                                     "gpu_name": "A100", "num_gpus": 1, "dph_total": dph,
                                     "started": time.time() - hours_ago * 3600, "ended": None, "state": "running",
                                     "ssh_host": None, "ssh_port": None})


def instances(cfg: Path) -> dict[str, dict]:
    listed = json.loads(cli(cfg, "instances", "list", "--json", "--no-refresh").stdout)
    return {r["key"]: r for r in listed["instances"]}


def test_a_locked_state_database_stops_the_launch_before_anything_is_rented(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        assert cli(cfg, "instances", "list", "--json").returncode == 0  # the database exists
        with StateLock(cfg.parent / "state.sqlite"):
            res = cli(cfg, "offers", "launch", OFFER, "--yes")
        assert res.returncode == 1
        assert not server.received("PUT"), "rented although the rent could not be recorded"
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        assert "state.sqlite" in res.stderr and "locked by another process" in res.stderr


def test_a_rent_that_cannot_be_recorded_names_the_instance_and_how_to_destroy_it(small_ws: Path):
    with ReplayServer() as server:
        serve(server, create=Reply(200, json.dumps(fixture_json("vast/create_instance.json")).encode(), delay=2.0))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        launch = subprocess.Popen([sys.executable, "-m", "zelda_tui", "offers", "launch", OFFER, "--yes",
                                   "--config", str(cfg)], env={**os.environ, **ENV},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not server.received("PUT") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.received("PUT")
        with StateLock(cfg.parent / "state.sqlite"):  # taken while the provider creates the instance
            out, err = launch.communicate(timeout=120)
        assert launch.returncode == 1, out + err
        assert f"RENTED vast:{NEW_ID}" in err and f"zelda-tui instances destroy vast:{NEW_ID} --yes" in err
        assert f"vastai destroy instance {NEW_ID}" in err and "Traceback" not in err

        # the reservation written before the rent keeps it on the books: it counts against the budget
        reserved = [r for r in instances(cfg).values() if r["state"] == "launching"]
        assert len(reserved) == 1 and reserved[0]["ended"] is None and reserved[0]["dph_total"] > 0
        destroyed = cli(cfg, "instances", "destroy", f"vast:{NEW_ID}", "--yes")
        assert destroyed.returncode == 0, destroyed.stderr
        assert len(server.received("DELETE", f"/api/v0/instances/{NEW_ID}/")) == 1
        after = instances(cfg)
        assert list(after) == [f"vast:{NEW_ID}"] and after[f"vast:{NEW_ID}"]["state"] == "destroyed"
        assert after[f"vast:{NEW_ID}"]["ended"] is not None


def test_a_rent_the_provider_refuses_leaves_no_reservation(small_ws: Path):
    with ReplayServer() as server:
        serve(server, create=Reply.file("vast/create_instance_404.json", status=404))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        assert cli(cfg, "offers", "launch", OFFER, "--yes").returncode == 1
        assert instances(cfg) == {}


def unknown_gpu_offers() -> Reply:
    """The fixture's offers plus one GPU the estimator has no tokens/s figure for."""
    offers = fixture_json("vast/search_offers.json")["offers"]
    odd = {**offers[0], "id": 777, "ask_contract_id": 777, "gpu_name": "RTX PRO 9999", "gpu_ram": 98304}
    return Reply.json({"offers": [*offers, odd]})


def test_no_budget_left_or_an_unknown_cost_refuse_unless_forced(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        server.route("POST", "/api/v0/bundles/", unknown_gpu_offers())
        server.route("PUT", "/api/v0/asks/777/", Reply.file("vast/create_instance.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        cfg.write_text(cfg.read_text() + "\n[budget]\nmax_total_usd = 100.0\n")

        unknown = cli(cfg, "offers", "launch", "vast:777", "--yes")
        assert unknown.returncode == 1 and "cannot check the cost" in unknown.stderr
        assert "RTX PRO 9999" in unknown.stderr and "--force" in unknown.stderr
        assert not server.received("PUT")

        track(cfg, "900", hours_ago=60, dph=2.0)  # $120 of the $100 already spent
        for offer in (OFFER, "vast:777"):  # a known cost and an unknown one
            res = cli(cfg, "offers", "launch", offer, "--yes")
            assert res.returncode == 1 and "no budget left" in res.stderr and "$120.00 spent" in res.stderr
        assert not server.received("PUT")

        forced = cli(cfg, "offers", "launch", "vast:777", "--yes", "--force")
        assert forced.returncode == 0, forced.stderr
        assert len(server.received("PUT")) == 1


def test_enforce_tries_every_instance_and_records_the_ones_already_gone(small_ws: Path):
    with ReplayServer() as server:
        server.route("DELETE", "/api/v0/instances/101/", Reply.error(404, {"error": "no such instance"}))
        server.route("DELETE", "/api/v0/instances/102/", Reply.error(400, {"msg": "instance is locked"}))
        server.route("DELETE", "/api/v0/instances/103/", Reply.file("vast/destroy_instance.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        cfg.write_text(cfg.read_text() + "\n[budget]\nmax_runtime_hours = 24\n")
        track(cfg, "101", 30)  # newest first in the table: 101 is tried first
        track(cfg, "102", 31)
        track(cfg, "103", 32)

        res = cli(cfg, "instances", "enforce")
        assert res.returncode == 1, res.stdout + res.stderr
        assert sorted(r.path for r in server.received("DELETE")) == [f"/api/v0/instances/{i}/" for i in (101, 102, 103)]
        assert "already gone at the provider: vast:101" in res.stdout
        assert "destroyed vast:103" in res.stdout
        assert "FAILED to destroy vast:102" in res.stderr and "instance is locked" in res.stderr
        rows = instances(cfg)
        assert rows["vast:101"]["state"] == "gone" and rows["vast:101"]["ended"] is not None
        assert rows["vast:102"]["ended"] is None  # still billing: tried again next time
        assert rows["vast:103"]["state"] == "destroyed"


def test_an_instance_the_provider_no_longer_knows_stops_counting(small_ws: Path):
    with ReplayServer() as server:
        server.route("GET", "/api/v0/instances/555/", Reply.error(404, {"error": "not found"}))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        track(cfg, "555", 2)
        listed = json.loads(cli(cfg, "instances", "list", "--json").stdout)
        row = listed["instances"][0]
        assert row["state"] == "gone" and row["ended"] is not None and "404" in row["warning"]
        spent = listed["budget"]["spent_usd"]
        time.sleep(0.2)
        assert json.loads(cli(cfg, "instances", "list", "--json").stdout)["budget"]["spent_usd"] == pytest.approx(spent)


def test_a_launch_interrupted_mid_request_stays_on_the_books(small_ws: Path):
    """ctrl+c while the provider is creating the instance: the rent may have gone through, so the
    reservation is kept as "unconfirmed" (counted against the budget), never deleted."""
    with ReplayServer() as server:
        # the provider takes 10 s to answer: ctrl+c lands well inside that, even on a loaded machine
        serve(server, create=Reply(200, json.dumps(fixture_json("vast/create_instance.json")).encode(), delay=10.0))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        # ctrl+c as a terminal sends it: SIGINT at its default in the CLI, whatever the runner inherited
        # (a test runner started in the background of a script ignores SIGINT, and its children would too)
        launch = subprocess.Popen([sys.executable, "-m", "zelda_tui", "offers", "launch", OFFER, "--yes",
                                   "--config", str(cfg)], env={**os.environ, **ENV},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while not server.received("PUT") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.received("PUT")
        launch.send_signal(signal.SIGINT)
        launch.communicate(timeout=60)
        assert launch.returncode != 0
        kept = [r for r in instances(cfg).values() if r["offer"] == OFFER]
        assert len(kept) == 1 and kept[0]["state"] == "unconfirmed" and kept[0]["ended"] is None
