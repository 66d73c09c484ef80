"""search -> launch -> ready -> destroy through the real CLI against a local replay of Vast's API,
with the budget guard, dry run, confirmation and the offer-gone case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from tests.conftest import run_cli

from .test_offers_cli import KEY, workspace


ENV = {"VAST_API_KEY": KEY, "VULTR_API_KEY": ""}
OFFER = "vast:39185351"  # the cheapest A100 of the fixture
NEW_ID = str(fixture_json("vast/create_instance.json")["new_contract"])


def serve(server: ReplayServer, create: Reply | None = None) -> None:
    server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
    server.route("PUT", "/api/v0/asks/39185351/", create or Reply.file("vast/create_instance.json"))
    loading = fixture_json("vast/show_instance.json")
    loading["instances"]["actual_status"] = "loading"
    server.route("GET", f"/api/v0/instances/{NEW_ID}/", Reply.json(loading), Reply.file("vast/show_instance.json"))
    server.route("DELETE", f"/api/v0/instances/{NEW_ID}/", Reply.file("vast/destroy_instance.json"))


def cli(cfg: Path, *args: str):
    return run_cli(*args, "--config", str(cfg), env=ENV)


def test_launch_needs_yes_then_tracks_and_destroys(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/api/v0")

        dry = cli(cfg, "offers", "launch", OFFER, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "PUT" in dry.stdout and "/asks/39185351/" in dry.stdout and "***" in dry.stdout and KEY not in dry.stdout
        unconfirmed = cli(cfg, "offers", "launch", OFFER)
        assert unconfirmed.returncode == 1 and "add --yes" in unconfirmed.stderr
        assert "$0.695/h" in unconfirmed.stdout and "budget:" in unconfirmed.stdout
        assert not server.received("PUT")  # nothing rented without --yes

        launched = cli(cfg, "offers", "launch", OFFER, "--yes", "--json")
        assert launched.returncode == 0, launched.stderr
        tracked = json.loads(launched.stdout)
        assert tracked["key"] == f"vast:{NEW_ID}" and tracked["dph_total"] == pytest.approx(0.69519, abs=1e-4)
        assert server.received("PUT")[0].json()["runtype"] == "ssh_direct"

        first = json.loads(cli(cfg, "instances", "list", "--json").stdout)["instances"][0]
        assert first["state"] == "loading" and first["ssh_host"] is None
        ready = json.loads(cli(cfg, "instances", "list", "--json").stdout)["instances"][0]
        assert ready["state"] == "running" and (ready["ssh_host"], ready["ssh_port"]) == ("ssh2281.vast.ai", 10882)

        assert cli(cfg, "instances", "destroy", NEW_ID).returncode == 1  # needs --yes
        gone = cli(cfg, "instances", "destroy", NEW_ID, "--yes", "--json")
        assert gone.returncode == 0, gone.stderr
        assert json.loads(gone.stdout)["state"] == "destroyed"
        assert len(server.received("DELETE")) == 1
        listed = json.loads(cli(cfg, "instances", "list", "--json").stdout)
        assert listed["instances"][0]["state"] == "destroyed" and listed["budget"]["spent_usd"] >= 0
        again = cli(cfg, "instances", "destroy", NEW_ID, "--yes")
        assert again.returncode == 1 and "already destroyed" in again.stderr


def test_offer_gone_at_launch_tracks_nothing(small_ws: Path):
    with ReplayServer() as server:
        serve(server, create=Reply.file("vast/create_instance_404.json", status=404))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        res = cli(cfg, "offers", "launch", OFFER, "--yes")
        assert res.returncode == 1
        assert "offer gone" in res.stderr and res.stderr.count("\n") == 1
        listed = json.loads(cli(cfg, "instances", "list", "--json").stdout)
        assert listed["instances"] == []


def test_budget_guard_refuses_unless_forced(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        cfg.write_text(cfg.read_text() + "\n[budget]\nmax_total_usd = 10.0\nmax_hourly_usd = 0.5\n")
        res = cli(cfg, "offers", "launch", OFFER, "--yes")
        assert res.returncode == 1 and "over budget.max_hourly_usd" in res.stderr
        assert not server.received("PUT")
        forced = cli(cfg, "offers", "launch", OFFER, "--yes", "--force")
        assert forced.returncode == 0, forced.stderr


def test_an_offer_found_with_a_widened_query_can_be_launched(small_ws: Path):
    """`verified=false` brings back unverified hosts (vastai's defaults widened); launching one asks
    Vast for that offer by id without the verified/external defaults, so it is found and rented."""
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        res = cli(cfg, "offers", "launch", OFFER, "--yes")
        assert res.returncode == 0, res.stderr
        body = server.received("POST", "/api/v0/bundles/")[-1].json()
        assert body["id"] == {"eq": "39185351"} or body["id"] == {"eq": 39185351}
        assert "verified" not in body and "external" not in body and body["rentable"] == {"eq": True}
