"""`zelda-tui offers search` through the real CLI: live Vast offers from a local replay server,
the offline catalog for the rest, the vastai query, fit and cost per offer, keys never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer, Reply, fixture_json
from tests.conftest import run_cli


KEY = "vast-test-key-5f3a9c"
MODEL = 'base = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"'


def workspace(small_ws: Path, vast_url: str) -> Path:
    text = small_ws.read_text().replace('base = "local/tiny"', MODEL).replace("max_seq_len = 64", "max_seq_len = 4096")
    small_ws.write_text(text + f'\n[phases.0]\nmix = "small"\n\n[providers.vast]\nbase_url = "{vast_url}"\n')
    return small_ws


def test_live_vast_plus_catalog_with_fit_and_cost(small_ws: Path):
    with ReplayServer() as server:
        server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        res = run_cli("offers", "search", "--json", "--query", "gpu_name=A100 num_gpus=1", "--sort", "dph_total",
                      "--config", str(cfg), env={"VAST_API_KEY": KEY, "VULTR_API_KEY": ""})
        assert res.returncode == 0, res.stderr
        assert server.received("POST", "/api/v0/bundles/")[0].headers["authorization"] == f"Bearer {KEY}"
    data = json.loads(res.stdout)
    rows = data["offers"]
    raw_a100 = [o for o in fixture_json("vast/search_offers.json")["offers"] if "A100" in o["gpu_name"] and o["num_gpus"] == 1]
    vast_rows = [r for r in rows if r["provider"] == "vast"]
    assert sorted(r["id"] for r in vast_rows) == sorted(str(o["ask_contract_id"]) for o in raw_a100)
    assert {r["provider"] for r in rows} == {"vast", "vultr", "gcp"}  # vultr and gcp from the offline catalog
    assert [r["dph_total"] for r in rows] == sorted(r["dph_total"] for r in rows)
    for r in rows:
        assert r["fit"] in ("fits", "tight", "does-not-fit") and r["vram_gb"] > 0
        if r["hours"] is not None:
            assert r["dollars"] == pytest.approx(r["hours"] * r["dph_total"], abs=0.02)
    assert any("VULTR_API_KEY is not set" in w and "offline Vultr catalog" in w for w in data["warnings"])
    assert KEY not in res.stdout + res.stderr


def test_no_keys_still_browses_the_catalog_and_bad_query_is_usage(small_ws: Path):
    cfg = workspace(small_ws, "http://127.0.0.1:9/api/v0")
    res = run_cli("offers", "search", "--provider", "gcp,vultr", "--config", str(cfg), env={"VAST_API_KEY": "", "VULTR_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    assert "gcp:a2-ultragpu-1g@" in res.stdout and "fits" in res.stdout
    bad = run_cli("offers", "search", "--query", "gpu_ram=>80", "--config", str(cfg))
    assert bad.returncode == 2 and "column" in bad.stderr and "'=>'" in bad.stderr


def test_bad_key_is_a_warning_not_a_crash(small_ws: Path):
    with ReplayServer() as server:
        server.route("POST", "/api/v0/bundles/", Reply.error(401, {"detail": "bad key"}))
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        res = run_cli("offers", "search", "--json", "--config", str(cfg), env={"VAST_API_KEY": KEY, "VULTR_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    warnings = json.loads(res.stdout)["warnings"]
    assert any(w.startswith("vast: search offers: 401") for w in warnings)
    assert KEY not in res.stdout + res.stderr
