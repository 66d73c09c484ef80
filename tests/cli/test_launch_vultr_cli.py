"""The Vultr flow through the real CLI against a local replay of Vultr's API: search (every plans
page, region stock) → launch with an SSH key → list until ready with its SSH endpoint → destroy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from tests.conftest import run_cli

from .test_offers_cli import MODEL


KEY = "vultr-test-key-8d21"
PLAN = "vcg-a100-12c-120g-80vram"
NEW_ID = "4f0f12e5-1f84-404f-aa84-85f431ea5ec2"  # create_instance.json's id


def workspace(small_ws: Path, url: str, ssh_key: bool = True) -> Path:
    text = small_ws.read_text().replace('base = "local/tiny"', MODEL).replace("max_seq_len = 64", "max_seq_len = 4096")
    extra = f'\n[phases.0]\nmix = "small"\n\n[providers.vultr]\nbase_url = "{url}"\n'
    small_ws.write_text(text + extra + ('ssh_key_id = "key-123"\n' if ssh_key else ""))
    return small_ws


def serve(server: ReplayServer) -> None:
    availability = fixture_json("vultr/region_availability.json")
    availability["available_plans"].append(PLAN)
    server.route("GET", "/v2/plans", Reply.file("vultr/plans.json"))
    server.route("GET", "/v2/regions/ewr/availability", Reply.json(availability))
    server.route("POST", "/v2/instances", Reply.file("vultr/create_instance.json", status=202))
    pending = fixture_json("vultr/get_instance.json")
    pending["instance"].update(id=NEW_ID, status="pending", main_ip="0.0.0.0")
    ready = fixture_json("vultr/get_instance.json")
    ready["instance"]["id"] = NEW_ID
    server.route("GET", f"/v2/instances/{NEW_ID}", Reply.json(pending), Reply.json(ready))
    server.route("DELETE", f"/v2/instances/{NEW_ID}", Reply.empty(204))


def cli(cfg: Path, *args: str):
    return run_cli(*args, "--config", str(cfg), env={"VULTR_API_KEY": KEY, "VAST_API_KEY": ""})


def test_vultr_search_launch_ready_destroy(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/v2")
        found = cli(cfg, "offers", "search", "--provider", "vultr", "--query", "gpu_name=A100", "--json")
        assert found.returncode == 0, found.stderr
        keys = [o["key"] for o in json.loads(found.stdout)["offers"]]
        assert f"vultr:{PLAN}@ewr" in keys

        launched = cli(cfg, "offers", "launch", f"vultr:{PLAN}@ewr", "--yes", "--json")
        assert launched.returncode == 0, launched.stderr
        tracked = json.loads(launched.stdout)
        assert tracked["key"] == f"vultr:{NEW_ID}" and tracked["dph_total"] == pytest.approx(2.397)
        body = server.received("POST", "/v2/instances")[0].json()
        assert (body["plan"], body["region"], body["sshkey_id"]) == (PLAN, "ewr", ["key-123"])
        assert KEY not in launched.stdout + launched.stderr

        first = json.loads(cli(cfg, "instances", "list", "--json").stdout)["instances"][0]
        assert first["state"] == "pending" and first["ssh_host"] is None
        ready = json.loads(cli(cfg, "instances", "list", "--json").stdout)["instances"][0]
        assert ready["state"] == "active" and (ready["ssh_host"], ready["ssh_port"]) == ("192.0.2.123", 22)

        gone = cli(cfg, "instances", "destroy", f"vultr:{NEW_ID}", "--yes", "--json")
        assert gone.returncode == 0, gone.stderr
        assert json.loads(gone.stdout)["state"] == "destroyed"
        assert len(server.received("DELETE")) == 1


def test_vultr_launch_without_an_ssh_key_rents_nothing(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/v2", ssh_key=False)
        res = cli(cfg, "offers", "launch", f"vultr:{PLAN}@ewr", "--yes")
        assert res.returncode == 1 and "ssh_key_id" in res.stderr
        assert not server.received("POST")
