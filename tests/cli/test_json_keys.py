"""`--json` keys are a contract (scripts and cron jobs read them): the offer, launch and instance
objects keep exactly their keys, through the real CLI against the local replay of Vast's API."""

from __future__ import annotations

import json
from pathlib import Path

from tests.backends.replay_server import ReplayServer

from .test_launch_cli import NEW_ID, OFFER, cli, serve
from .test_offers_cli import workspace

COLUMNS = ["key", "provider", "instance_id", "offer", "gpu_name", "num_gpus", "dph_total", "started", "ended", "state",
           "ssh_host", "ssh_port"]
OFFER_KEYS = ["key", "provider", "id", "gpu_name", "num_gpus", "gpu_ram", "dph_total", "region", "reliability",
              "available", "price_date", "price_source", "fit", "vram_gb", "hours", "dollars", "tokens_per_s_source"]


def run_json(cfg: Path, *args: str):
    res = cli(cfg, *args, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_offer_launch_and_instance_json_keep_their_keys(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        offers = run_json(cfg, "offers", "search", "--provider", "vast")
        assert list(offers) == ["offers", "warnings"] and list(offers["offers"][0]) == OFFER_KEYS

        plan = run_json(cfg, "offers", "launch", OFFER, "--dry-run")
        assert list(plan) == ["offer", "budget", "over_budget", "request"] and list(plan["offer"]) == OFFER_KEYS
        assert list(plan["budget"]) == ["max_total_usd", "max_hourly_usd", "spent_usd", "left_usd", "max_runtime_hours"]

        launched = run_json(cfg, "offers", "launch", OFFER, "--yes")
        assert list(launched) == COLUMNS and launched["state"] == "starting"

        offline = run_json(cfg, "instances", "list", "--no-refresh")
        assert list(offline) == ["instances", "budget"] and list(offline["instances"][0]) == COLUMNS + ["hours", "spent_usd"]
        live = run_json(cfg, "instances", "list")["instances"][0]
        assert list(live) == COLUMNS + ["ready", "hours", "spent_usd"] and live["ready"] is False

        gone = run_json(cfg, "instances", "destroy", NEW_ID, "--yes")
        assert list(gone) == COLUMNS + ["spent_usd"] and gone["state"] == "destroyed"
        assert run_json(cfg, "instances", "enforce", "--dry-run") == []
