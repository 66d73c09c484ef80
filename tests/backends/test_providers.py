"""Provider clients against a real local HTTP server replaying the shared fixtures.

Keys are made up here; every failure must be one line naming provider and step, and the key
must never show up in an error, a repr or a dry-run description.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from zelda_tui.backends.providers import GcpClient, RetryPolicy, VastClient, VultrClient, offers_from_machine_types
from zelda_tui.backends.providers.gcp import accelerator_zones
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.offers import Offer

from .replay_server import ReplayServer, Reply, closed_port, fixture_json


VAST_KEY = "vk-test-5f3e9a1c77d04b2e"  # made up
VULTR_KEY = "VULTRTESTKEY0123456789ABCDEFGH"  # made up
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=2.0, max_total_wait=3.0)


@pytest.fixture
def server():
    with ReplayServer() as srv:
        yield srv


def vast(server: ReplayServer, key: str | None = VAST_KEY, **kw: Any) -> VastClient:
    kw.setdefault("retry", FAST_RETRY)
    return VastClient(key, base_url=server.url + "/api/v0", **kw)


def vultr(server: ReplayServer, **kw: Any) -> VultrClient:
    kw.setdefault("retry", FAST_RETRY)
    return VultrClient(VULTR_KEY, base_url=server.url + "/v2", **kw)


def assert_one_line_error(exc: ZeldaError, prefix: str, *parts: str, secrets: tuple[str, ...] = (VAST_KEY, VULTR_KEY)) -> None:
    text = str(exc)
    assert text == exc.message
    assert "\n" not in text and text.startswith(prefix), text
    for part in parts:
        assert part in text, text
    for secret in secrets:
        assert secret not in text and secret not in repr(exc)


# -- Vast -----------------------------------------------------------------------------------------


def test_vast_search_normalises_every_offer(server):
    server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
    raw_offers = fixture_json("vast/search_offers.json")["offers"]
    offers = vast(server).search_offers({"num_gpus": {"gte": 1}})

    assert len(offers) == len(raw_offers) == 33
    for offer, raw in zip(offers, raw_offers, strict=True):
        assert isinstance(offer, Offer) and offer.provider == "vast"
        assert offer.id == str(raw["ask_contract_id"]) and offer.key == f"vast:{raw['id']}"
        assert offer.gpu_ram == pytest.approx(raw["gpu_ram"] / 1000)
        assert offer.gpu_total_ram == pytest.approx(raw["gpu_total_ram"] / 1000)
        assert offer.cpu_ram == pytest.approx(raw["cpu_ram"] / 1000)
        assert offer.dph_total == pytest.approx(raw["dph_base"] + raw["storage_total_cost"])
        assert offer.region == raw["geolocation"] and offer.num_gpus == len(raw["gpu_ids"])
        assert offer.price_date == "live" and offer.raw == raw

    first = offers[0]  # written out from the fixture text, not computed by the client's code
    assert (first.id, first.gpu_name, first.num_gpus) == ("39185351", "A100 SXM4", 1)
    assert first.gpu_ram == 39.936  # 39936 MB, in the vastai CLI's GB (x1000)
    assert first.cpu_ram == pytest.approx(128.803, abs=1e-3)  # 128803 MB
    assert (first.cpu_cores, first.disk_space, first.region) == (32.0, 1576.0, "Alberta, CA")
    assert first.dph_total == pytest.approx(0.6951851851851852)
    assert (first.reliability, first.inet_down, first.inet_up) == (0.9631111, 413.9, 264.3)
    assert {o.gpu_ram for o in offers} <= {39.936, 40.96, 81.92}

    (req,) = server.received("POST", "/api/v0/bundles/")
    assert req.headers["authorization"] == f"Bearer {VAST_KEY}"
    assert req.json() == {"num_gpus": {"gte": 1}, "verified": {"eq": True}, "external": {"eq": False},
                          "rentable": {"eq": True}, "type": "on-demand"}  # vastai's defaults (issue 20)
    assert VAST_KEY not in str(req.query) and "api_key" not in req.query


def test_vast_search_create_show_destroy(server):
    show = fixture_json("vast/show_instance.json")
    loading = copy.deepcopy(show)
    loading["instances"].update(actual_status="loading", ssh_host=None, ssh_port=None)
    direct = copy.deepcopy(show)
    direct["instances"]["ports"] = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "30022"}]}
    server.route("POST", "/api/v0/bundles/", Reply.file("vast/search_offers.json"))
    server.route("PUT", "/api/v0/asks/39185351/", Reply.file("vast/create_instance.json"))
    server.route("GET", "/api/v0/instances/1234568/", Reply.json(loading), Reply.file("vast/show_instance.json"), Reply.json(direct))
    server.route("DELETE", "/api/v0/instances/1234568/", Reply.file("vast/destroy_instance.json"))
    client = vast(server)

    offer = client.search_offers({})[0]
    instance_id = client.create_instance(offer.id, "pytorch/pytorch:latest", 40, onstart="echo hi", label="zelda-run")
    assert instance_id == "1234568"  # new_contract, not the ask id
    (put,) = server.received("PUT")
    assert put.json() == {"client_id": "me", "image": "pytorch/pytorch:latest", "disk": 40, "runtype": "ssh_direct",
                          "env": {}, "onstart": "echo hi", "label": "zelda-run"}

    booting = client.show_instance(instance_id)
    assert (booting.status, booting.ready, booting.ssh_endpoint) == ("loading", False, None)
    running = client.show_instance(instance_id)  # docs shape: ports is a bare list -> vast's ssh proxy
    assert running.ready and running.ssh_endpoint == ("ssh2281.vast.ai", 10882)
    assert "jupyter_token" not in running.raw
    direct_run = client.show_instance(instance_id)  # Docker-style ports -> direct to the host
    assert direct_run.ssh_endpoint == ("63.135.50.11", 30022)
    assert all(r.query == {"owner": ["me"]} for r in server.received("GET"))

    client.destroy_instance(instance_id)
    assert [r.method for r in server.requests] == ["POST", "PUT", "GET", "GET", "GET", "DELETE"]
    assert all(r.headers["authorization"] == f"Bearer {VAST_KEY}" for r in server.requests)


FAILURES = [
    # (method, path, replies, call, expected parts)
    ("POST", "/api/v0/bundles/", [Reply.error(401, {"detail": "Invalid api key"})], "search",
     ["vast: search offers: 401 unauthorized — check VAST_API_KEY"]),
    ("POST", "/api/v0/bundles/", [Reply.error(403, {"msg": "no permission"})], "search",
     ["vast: search offers: 403 forbidden", "check VAST_API_KEY"]),
    ("GET", "/api/v0/instances/77/", [Reply.error(404, {"msg": "no such instance"})], "show",
     ["vast: show instance 77: 404 not found (no such instance)"]),
    ("PUT", "/api/v0/asks/1234567/", [Reply.error(410, {"success": False, "error": "gone"})], "create",
     ["vast: rent offer 1234567: offer gone (410)", "search again"]),
    ("PUT", "/api/v0/asks/1234567/", [Reply.file("vast/create_instance_404.json", status=404)], "create",
     ["vast: rent offer 1234567: offer gone (404)"]),
    ("POST", "/api/v0/bundles/", [Reply.error(500)], "search",
     ["vast: search offers: 500 server error after 3 attempts"]),
    ("POST", "/api/v0/bundles/", [Reply.error(429, {"detail": "API requests too frequent endpoint threshold=4.5"})], "search",
     ["vast: search offers: 429 rate limited after 3 attempts", "too frequent"]),
    ("POST", "/api/v0/bundles/", [Reply.malformed()], "search",
     ["vast: search offers: malformed JSON in the 200 answer"]),
    ("DELETE", "/api/v0/instances/77/", [Reply.json({"success": False, "msg": "not yours"})], "destroy",
     ["vast: destroy instance 77: refused (not yours)"]),
]


@pytest.mark.parametrize("method,path,replies,call,parts", FAILURES, ids=[f[4][0][:40] for f in FAILURES])
def test_vast_failures_are_one_line(server, method, path, replies, call, parts):
    server.route(method, path, *replies)
    client = vast(server)
    calls = {
        "search": lambda: client.search_offers({}),
        "show": lambda: client.show_instance(77),
        "create": lambda: client.create_instance(1234567, "img", 10),
        "destroy": lambda: client.destroy_instance(77),
    }
    with pytest.raises(ZeldaError) as err:
        calls[call]()
    assert_one_line_error(err.value, "vast: ", *parts)


def test_vast_read_timeout(server):
    server.route("POST", "/api/v0/bundles/", Reply.slow(1.5, {"offers": []}))
    started = time.monotonic()
    with pytest.raises(ZeldaError) as err:
        vast(server, read_timeout=0.3).search_offers({})
    assert time.monotonic() - started < 1.4
    assert_one_line_error(err.value, "vast: search offers: no answer from 127.0.0.1:", "within 0.3s (read timeout)")


def test_vast_connection_refused():
    with closed_port() as url:
        client = VastClient(VAST_KEY, base_url=url + "/api/v0", retry=FAST_RETRY, connect_timeout=1.0)
        with pytest.raises(ZeldaError) as err:
            client.show_instance(5)
    assert_one_line_error(err.value, "vast: show instance 5: cannot connect to 127.0.0.1:", "connection refused")


def test_vast_retry_honours_retry_after(server):
    server.route("POST", "/api/v0/bundles/", Reply.error(429, headers={"Retry-After": "1"}), Reply.file("vast/search_offers.json"))
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=5, max_total_wait=5)
    started = time.monotonic()
    offers = vast(server, retry=retry).search_offers({})
    elapsed = time.monotonic() - started
    assert len(offers) == 33
    assert 1.0 <= elapsed < 3.0
    first, second = server.received()
    assert second.at - first.at >= 1.0


def test_vast_retry_after_beyond_the_cap_fails_now(server):
    server.route("POST", "/api/v0/bundles/", Reply.error(429, headers={"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(ZeldaError) as err:
        vast(server).search_offers({})
    assert time.monotonic() - started < 1.0 and len(server.requests) == 1
    assert_one_line_error(err.value, "vast: search offers: 429 rate limited after 1 attempt", "server asks to wait 120s")


def test_vast_500_then_success_is_retried_but_rent_is_not(server):
    server.route("POST", "/api/v0/bundles/", Reply.error(502), Reply.file("vast/search_offers.json"))
    server.route("PUT", "/api/v0/asks/9/", Reply.error(500), Reply.file("vast/create_instance.json"))
    client = vast(server)
    assert len(client.search_offers({})) == 33
    assert len(server.received("POST")) == 2
    with pytest.raises(ZeldaError) as err:  # repeating a rent after a 500 could rent twice
        client.create_instance(9, "img", 10)
    assert len(server.received("PUT")) == 1
    assert_one_line_error(err.value, "vast: rent offer 9: 500 server error", "try again later")


def test_vast_key_never_leaks(server, monkeypatch):
    server.route("POST", "/api/v0/bundles/", Reply.error(403, {"msg": f"key {VAST_KEY} is revoked"}))
    client = vast(server)
    with pytest.raises(ZeldaError) as err:
        client.search_offers({})
    assert_one_line_error(err.value, "vast: search offers: 403 forbidden", "key *** is revoked")
    assert VAST_KEY not in repr(client) and VAST_KEY not in repr(client.api)

    dry = client.describe_create_instance(42, "img:latest", 20, onstart=f"echo {VAST_KEY}", label="x")
    assert VAST_KEY not in dry
    assert dry.splitlines()[0] == f"PUT {server.url}/api/v0/asks/42/"
    assert "Authorization: Bearer ***" in dry and '"runtype": "ssh_direct"' in dry and "echo ***" in dry
    old_style = client.api.describe_request("GET", "/instances/", params={"owner": "me", "api_key": VAST_KEY})
    assert "?owner=me&api_key=***" in old_style and VAST_KEY not in old_style

    monkeypatch.delenv("VAST_API_KEY", raising=False)
    with pytest.raises(ZeldaError, match="^vast: VAST_API_KEY is not set"):
        VastClient.from_env()
    monkeypatch.setenv("VAST_API_KEY", VAST_KEY)
    assert VastClient.from_env().api.headers()["Authorization"] == f"Bearer {VAST_KEY}"


def test_vast_without_key_sends_no_auth_and_says_so(server):
    server.route("POST", "/api/v0/bundles/", Reply.error(401))
    with pytest.raises(ZeldaError) as err:
        vast(server, key=None).search_offers({})
    assert "authorization" not in server.requests[0].headers
    assert_one_line_error(err.value, "vast: search offers: 401 unauthorized — VAST_API_KEY is not set")


# -- Vultr ----------------------------------------------------------------------------------------

VCG_IDS = [p["id"] for p in fixture_json("vultr/plans.json")["plans"]]


def test_vultr_plans_follow_every_page_and_region_stock(server):
    availability = fixture_json("vultr/region_availability.json")
    availability["available_plans"] += VCG_IDS[1:]  # the first (4 GB slice) is sold out
    server.route("GET", "/v2/plans", Reply.file("vultr/plans_paging_example.json"), Reply.file("vultr/plans.json"))
    server.route("GET", "/v2/regions/ewr/availability", Reply.json(availability))
    client = vultr(server)

    offers = client.gpu_plans()
    assert [o.id for o in offers] == [f"{p}@ewr" for p in VCG_IDS[1:]]  # vc2-* from page 1 filtered out
    first, second = server.received("GET", "/v2/plans")
    assert first.query == {"type": ["vcg"], "per_page": ["100"]}
    assert second.query == {"type": ["vcg"], "per_page": ["100"], "cursor": ["WxYzExampleNext"]}
    assert server.received("GET", "/v2/regions/ewr/availability")[0].query == {"type": ["vcg"]}
    assert all(r.headers["authorization"] == f"Bearer {VULTR_KEY}" for r in server.requests)

    raw = {p["id"]: p for p in fixture_json("vultr/plans.json")["plans"]}
    big = next(o for o in offers if o.id.startswith("vcg-a100-12c-120g-80vram"))
    assert (big.provider, big.gpu_name, big.num_gpus, big.region) == ("vultr", "NVIDIA A100", 1, "ewr")
    assert (big.gpu_ram, big.cpu_cores, big.cpu_ram, big.disk_space, big.dph_total) == (80.0, 12.0, 120.0, 1400.0, 2.397)
    assert big.raw == raw["vcg-a100-12c-120g-80vram"] and big.price_date == "live"
    for offer in offers:
        plan = raw[offer.id.split("@")[0]]
        assert offer.cpu_ram == plan["ram"] / 1024 and offer.gpu_ram == plan["gpu_vram_gb"]
        assert offer.dph_total == plan["hourly_cost"]

    server.route("GET", "/v2/plans", Reply.file("vultr/plans.json"))
    every = client.gpu_plans(only_available=False)
    assert [(o.id.split("@")[0], o.available) for o in every] == [(VCG_IDS[0], False), (VCG_IDS[1], True), (VCG_IDS[2], True)]
    assert every[0].gpu_ram == 4.0 and every[0].cpu_ram == 6.0


def test_vultr_create_get_delete(server):
    server.route("POST", "/v2/instances", Reply.file("vultr/create_instance.json", status=202))
    server.route("GET", "/v2/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60", Reply.file("vultr/get_instance.json"))
    server.route("DELETE", "/v2/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60", Reply.empty(204))
    client = vultr(server)

    created = client.create_instance("vcg-a100-12c-120g-80vram", "ewr", "ssh-key-1", label="zelda-run")
    assert (created.id, created.status, created.ready, created.public_ip, created.ssh_endpoint) == (
        "4f0f12e5-1f84-404f-aa84-85f431ea5ec2", "pending", False, None, None)
    assert "default_password" not in created.raw and "v5{Fkvb" not in repr(created)
    (post,) = server.received("POST")
    body = post.json()
    assert (body["plan"], body["region"], body["sshkey_id"], body["label"]) == ("vcg-a100-12c-120g-80vram", "ewr", ["ssh-key-1"], "zelda-run")
    assert "os_id" in body

    got = client.get_instance("cb676a46-66fd-4dfb-b839-443f2e6c0b60")
    assert got.ready and got.status == "active" and got.ssh_endpoint == ("192.0.2.123", 22)
    assert client.delete_instance("cb676a46-66fd-4dfb-b839-443f2e6c0b60") is None
    assert [r.method for r in server.requests] == ["POST", "GET", "DELETE"]

    dry = client.describe_create_instance("vcg-a100-12c-120g-80vram", "ewr", "ssh-key-1")
    assert dry.startswith(f"POST {server.url}/v2/instances\n") and "Authorization: Bearer ***" in dry and VULTR_KEY not in dry


@pytest.mark.parametrize("status,call,parts", [
    (401, "plans", ["vultr: list plans: 401 unauthorized — check VULTR_API_KEY"]),
    (404, "get", ["vultr: get instance nope: 404 not found"]),
    (503, "delete", ["vultr: delete instance nope: 503 server error after 3 attempts"]),
])
def test_vultr_failures_are_one_line(server, status, call, parts):
    for method, path in [("GET", "/v2/plans"), ("GET", "/v2/instances/nope"), ("DELETE", "/v2/instances/nope")]:
        server.route(method, path, Reply.error(status, {"error": f"echo {VULTR_KEY}"}))
    client = vultr(server)
    calls = {"plans": client.gpu_plans, "get": lambda: client.get_instance("nope"), "delete": lambda: client.delete_instance("nope")}
    with pytest.raises(ZeldaError) as err:
        calls[call]()
    assert_one_line_error(err.value, "vultr: ", *parts)


def test_vultr_repeating_cursor_stops(server):
    looping = fixture_json("vultr/plans.json")
    looping["meta"]["links"]["next"] = "again"
    server.route("GET", "/v2/plans", Reply.json(looping))
    with pytest.raises(ZeldaError, match="^vultr: list plans: the server repeated page cursor 'again'"):
        vultr(server).gpu_plans()
    assert len(server.requests) == 2


# -- GCP ------------------------------------------------------------------------------------------


def test_gcp_machine_types_normalise_with_passed_prices():
    listing = fixture_json("gcp/machine_types_aggregated_list.libcloud.json")
    prices = {("n1-standard-4", "us-central1-a"): 0.19, ("n1-standard-4", "europe-west1-a"): 0.21,
              ("n1-highmem-4-d", "us-central1-a"): 0.3}
    assert offers_from_machine_types(listing, prices) == []  # 2013 answer: no GPU machine types

    with_gpus = copy.deepcopy(listing)
    for scoped in with_gpus["items"].values():
        for mt in scoped["machineTypes"]:
            if mt["name"] in ("n1-standard-4", "n1-highmem-4-d"):
                mt["accelerators"] = [{"guestAcceleratorType": "nvidia-tesla-k80", "guestAcceleratorCount": 2}]
    accelerator = fixture_json("gcp/accelerator_type_get.libcloud.json")
    zones = accelerator_zones({"items": {"zones/us-central1-a": {"acceleratorTypes": [accelerator]},
                                         "zones/europe-west1-a": {"warning": {"code": "NO_RESULTS_ON_PAGE"}}}})
    assert zones == {"us-central1-a": {"nvidia-tesla-k80"}}

    offers = offers_from_machine_types(with_gpus, prices, zones, price_date="2026-06-01", price_source="test")
    assert sorted(o.id for o in offers) == ["n1-standard-4@europe-west1-a", "n1-standard-4@us-central1-a"]  # deprecated -d skipped
    us = next(o for o in offers if o.region == "us-central1-a")
    assert (us.provider, us.gpu_name, us.num_gpus, us.gpu_ram, us.cpu_cores) == ("gcp", "nvidia-tesla-k80", 2, 12.0, 4.0)
    assert (us.cpu_ram, us.disk_space, us.dph_total, us.available, us.price_date) == (15360 / 1024, 10240.0, 0.19, True, "2026-06-01")
    eu = next(o for o in offers if o.region == "europe-west1-a")
    assert eu.available is False  # no K80 in that zone


def test_gcp_without_credentials_uses_the_catalog(monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    catalog_offer = Offer("gcp", "a2-ultragpu-1g@us-central1-a", "nvidia-a100-80gb", 1, 80, 12, 170, 0, 5.07, "us-central1-a")
    other = Offer("vast", "1", "A100", 1, 80, 8, 64, 100, 1.0, "SE")
    client = GcpClient("proj", access_token="ya29.test-token", catalog=lambda: [catalog_offer, other])
    assert client.available() is False
    assert client.offers() == [catalog_offer]
    assert "ya29.test-token" not in repr(client)
    with pytest.raises(ZeldaError, match="^gcp: list offers: no offline catalog"):
        GcpClient().offers()


def test_answers_with_wrong_field_types_skip_that_item_with_a_warning(server, small_ws, monkeypatch):
    """`num_gpus: "two"` in one Vast offer and a Vultr plan without `id`: the other offers are listed,
    each odd item is one warning naming the provider, the item and the field; no traceback."""
    offers = fixture_json("vast/search_offers.json")["offers"]
    odd = {**offers[1], "num_gpus": "two"}
    server.route("POST", "/api/v0/bundles/", Reply.json({"offers": [offers[0], odd, *offers[2:]]}))
    plans = fixture_json("vultr/plans.json")
    plans["plans"][1] = {k: v for k, v in plans["plans"][1].items() if k != "id"}
    availability = fixture_json("vultr/region_availability.json")
    availability["available_plans"] += VCG_IDS
    server.route("GET", "/v2/plans", Reply.json(plans))
    server.route("GET", "/v2/regions/ewr/availability", Reply.json(availability))
    client = vast(server)
    listed = client.search_offers({})
    assert len(listed) == len(offers) - 1 and str(odd["id"]) not in {o.id for o in listed}
    assert client.skipped == [f"vast: offer {odd['id']}: skipped: `num_gpus` = 'two' is not a number"]
    plans_client = vultr(server)
    assert [o.id for o in plans_client.gpu_plans()] == [f"{VCG_IDS[0]}@ewr", f"{VCG_IDS[2]}@ewr"]
    assert plans_client.skipped == ["vultr: plan ?: skipped: `id` is missing"]

    from tests.cli.test_offers_cli import workspace
    from tests.conftest import run_cli

    cfg = workspace(small_ws, f"{server.url}/api/v0")
    cfg.write_text(cfg.read_text() + f'\n[providers.vultr]\nbase_url = "{server.url}/v2"\n')
    res = run_cli("offers", "search", "--provider", "vast,vultr", "--config", str(cfg),
                  env={"VAST_API_KEY": VAST_KEY, "VULTR_API_KEY": VULTR_KEY})
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "`num_gpus` = 'two' is not a number" in res.stderr and "vultr: plan ?: skipped" in res.stderr
