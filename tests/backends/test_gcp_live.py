"""Live GCP offers end to end against the local replay server: application-default credentials
files -> a real OAuth token grant (google-auth) -> the Compute API's aggregated machineTypes and
acceleratorTypes -> offers priced from the offline catalog; every failure -> one warning + catalog.

The Compute answers are built here from the shapes in
`tests/fixtures/providers/gcp/compute_v1_shapes.json` (the MachineType / AcceleratorType schema
skeletons plus the newer `accelerators`, `architecture`, `bundledLocalSsds` fields listed there) with
current GCP names (`nvidia-a100-80gb`, `nvidia-h100-80gb`, see PROVENANCE.md: no captured answer with
these GPUs exists); vCPU/memory per machine type are GCP's published sizes. Credentials are made here
too: a freshly generated RSA key for the service account, made-up secrets for the user file.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.conftest import run_cli
from zelda_tui.backends.providers import GcpClient, RetryPolicy, gcp_auth
from zelda_tui.backends.providers.gcp import search_gcp
from zelda_tui.backends.providers.search import search_offers
from zelda_tui.core.catalog import load_catalog
from zelda_tui.core.errors import ZeldaError

from .replay_server import ReplayServer, Reply, closed_port, fixture_json


PROJECT = "zelda-test-proj"
SA_EMAIL = f"zelda-offers@{PROJECT}.iam.gserviceaccount.com"
TOKEN = "ya29.c.test-ACCESS-TOKEN-made-up-9f8e7d6c5b4a"
REFRESH_TOKEN = "1//0g-made-up-refresh-token-Zq8xY2"
CLIENT_SECRET = "d-made-up-client-secret-K7p"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=1.0, max_total_wait=2.0)
SECRETS = (TOKEN, REFRESH_TOKEN, CLIENT_SECRET)
CATALOG_SOURCE = "catalog: github.com/skypilot-org/skypilot-catalog catalogs/v9/gcp/vms.csv @ 2c3d7ea7"

# --------------------------------------------------------------------------- Compute API answers

SHAPES = fixture_json("gcp/compute_v1_shapes.json")["schemas"]
MT_KEYS = set(SHAPES["MachineType"]) | {"accelerators", "architecture", "bundledLocalSsds"}
ACC_KEYS = set(SHAPES["AcceleratorType"])
SELF = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
# name -> (guestCpus, memoryMb, accelerator, count, bundled local SSD partitions): GCP's sizes.
MACHINE_TYPES = {
    "a2-ultragpu-1g": (12, 174080, "nvidia-a100-80gb", 1, 1),
    "a2-ultragpu-2g": (24, 348160, "nvidia-a100-80gb", 2, 2),
    "a2-ultragpu-4g": (48, 696320, "nvidia-a100-80gb", 4, 4),
    "a2-ultragpu-8g": (96, 1392640, "nvidia-a100-80gb", 8, 8),
    "a3-highgpu-1g": (26, 239616, "nvidia-h100-80gb", 1, 2),
    "a3-highgpu-8g": (208, 1916928, "nvidia-h100-80gb", 8, 16),
    "g2-standard-4": (4, 16384, "nvidia-l4", 1, 0),  # a GPU type the catalog cannot price
}
_ids = itertools.count(1000000)


def machine_type(name: str, zone: str, project: str = PROJECT) -> dict[str, Any]:
    cpus, mem, gpu, count, ssds = MACHINE_TYPES[name]
    mt = {
        "kind": "compute#machineType", "id": str(next(_ids)), "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name, "description": f"{cpus} vCPUs, {mem // 1024} GB RAM, {count} GPU{'s' if count > 1 else ''}",
        "guestCpus": cpus, "memoryMb": mem, "imageSpaceGb": 0, "maximumPersistentDisks": 128,
        "maximumPersistentDisksSizeGb": "263168", "zone": zone, "isSharedCpu": False,
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/machineTypes/{name}",
        "accelerators": [{"guestAcceleratorType": gpu, "guestAcceleratorCount": count}], "architecture": "X86_64",
    }
    if ssds:
        mt["bundledLocalSsds"] = {"partitionCount": ssds, "defaultInterface": "NVME"}
    assert set(mt) <= MT_KEYS
    return mt


def plain_machine_type(name: str, zone: str) -> dict[str, Any]:
    """A machine type without GPUs (what most of a real listing is)."""
    return {"kind": "compute#machineType", "id": str(next(_ids)), "name": name, "description": "4 vCPUs, 16 GB RAM",
            "guestCpus": 4, "memoryMb": 16384, "maximumPersistentDisks": 128, "maximumPersistentDisksSizeGb": "263168",
            "zone": zone, "isSharedCpu": False, "selfLink": f"{SELF}/zones/{zone}/machineTypes/{name}"}


def accelerator(name: str, zone: str) -> dict[str, Any]:
    acc = {"kind": "compute#acceleratorType", "id": str(next(_ids)), "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
           "name": name, "description": {"nvidia-a100-80gb": "NVIDIA A100 80GB", "nvidia-h100-80gb": "NVIDIA H100 80GB",
                                          "nvidia-l4": "NVIDIA L4"}[name],
           "zone": f"{SELF}/zones/{zone}", "selfLink": f"{SELF}/zones/{zone}/acceleratorTypes/{name}",
           "maximumCardsPerInstance": 8}
    assert set(acc) <= ACC_KEYS
    return acc


def no_results(zone: str) -> dict[str, Any]:
    return {"warning": {"code": "NO_RESULTS_ON_PAGE", "data": [{"key": "scope", "value": f"zones/{zone}"}],
                        "message": f"There are no results for scope 'zones/{zone}' on this page."}}


def aggregated(kind: str, items: dict[str, Any], next_page: str = "", project: str = PROJECT) -> dict[str, Any]:
    doc = {"kind": f"compute#{kind}AggregatedList", "id": f"projects/{project}/aggregated/{kind}s", "items": items,
           "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/aggregated/{kind}s"}
    if next_page:
        doc["nextPageToken"] = next_page
    assert set(doc) <= set(SHAPES[f"{kind[0].upper()}{kind[1:]}AggregatedList"])
    return doc


PAGE_2 = "CkUKQ3pvbmVzL2V1cm9wZS13ZXN0NC1hL21hY2hpbmVUeXBlcy9hMi11bHRyYWdwdS0xZw"  # opaque, as GCP's are


def machine_type_pages(project: str = PROJECT) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two pages; us-central1-a is split across them (the client must merge a zone's lists)."""
    def mts(zone: str, *names: str) -> dict[str, Any]:
        return {"machineTypes": [machine_type(n, zone, project) for n in names]}

    page1 = aggregated("machineType", {
        "zones/us-central1-a": {"machineTypes": [plain_machine_type("e2-standard-4", "us-central1-a")]
                                + mts("us-central1-a", "a2-ultragpu-1g", "a2-ultragpu-2g", "a2-ultragpu-4g",
                                      "a2-ultragpu-8g", "a3-highgpu-1g", "g2-standard-4")["machineTypes"]},
        "zones/us-central1-c": mts("us-central1-c", "a2-ultragpu-1g", "a3-highgpu-1g"),
        "zones/europe-west1-b": no_results("europe-west1-b"),
    }, next_page=PAGE_2, project=project)
    page2 = aggregated("machineType", {
        "zones/us-central1-a": mts("us-central1-a", "a3-highgpu-8g"),
        "zones/europe-west4-a": mts("europe-west4-a", "a2-ultragpu-1g", "a2-ultragpu-8g"),
        "zones/us-central1-f": mts("us-central1-f", "a2-ultragpu-1g"),  # not in the catalog: region price
        "zones/asia-southeast1-c": mts("asia-southeast1-c", "a2-ultragpu-1g"),  # region not in the catalog
    }, project=project)
    return page1, page2


def accelerator_page() -> dict[str, Any]:
    return aggregated("acceleratorType", {
        "zones/us-central1-a": {"acceleratorTypes": [accelerator(n, "us-central1-a")
                                                     for n in ("nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-l4")]},
        "zones/us-central1-c": {"acceleratorTypes": [accelerator("nvidia-h100-80gb", "us-central1-c")]},  # no A100
        "zones/europe-west4-a": {"acceleratorTypes": [accelerator("nvidia-a100-80gb", "europe-west4-a")]},
        "zones/us-central1-f": {"acceleratorTypes": [accelerator("nvidia-a100-80gb", "us-central1-f")]},
        "zones/asia-southeast1-c": {"acceleratorTypes": [accelerator("nvidia-a100-80gb", "asia-southeast1-c")]},
        "zones/europe-west1-b": no_results("europe-west1-b"),
    })


# (id) -> (gpu, count, $/h written out from core/catalog_data/gcp.json)
EXPECTED = {
    "a2-ultragpu-1g@us-central1-a": ("nvidia-a100-80gb", 1, 2.94582),
    "a2-ultragpu-2g@us-central1-a": ("nvidia-a100-80gb", 2, 5.89164),
    "a2-ultragpu-4g@us-central1-a": ("nvidia-a100-80gb", 4, 11.78328),
    "a2-ultragpu-8g@us-central1-a": ("nvidia-a100-80gb", 8, 23.56656),
    "a3-highgpu-1g@us-central1-a": ("nvidia-h100-80gb", 1, 5.38327),
    "a3-highgpu-8g@us-central1-a": ("nvidia-h100-80gb", 8, 43.06615),
    "a3-highgpu-1g@us-central1-c": ("nvidia-h100-80gb", 1, 5.38327),
    "a2-ultragpu-1g@europe-west4-a": ("nvidia-a100-80gb", 1, 3.24335),
    "a2-ultragpu-8g@europe-west4-a": ("nvidia-a100-80gb", 8, 25.94681),
    "a2-ultragpu-1g@us-central1-f": ("nvidia-a100-80gb", 1, 2.94582),  # us-central1's price (zones a and c agree)
}


def route_compute(server: ReplayServer, project: str = PROJECT) -> None:
    page1, page2 = machine_type_pages(project)
    server.route("GET", f"/compute/v1/projects/{project}/aggregated/machineTypes", Reply.json(page1), Reply.json(page2))
    server.route("GET", f"/compute/v1/projects/{project}/aggregated/acceleratorTypes", Reply.json(accelerator_page()))


def route_token(server: ReplayServer, *replies: Reply) -> None:
    server.route("POST", "/token", *(replies or (Reply.json({"access_token": TOKEN, "expires_in": 3599,
                                                              "token_type": "Bearer"}),)))


# --------------------------------------------------------------------------- credentials files


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_service_account(path: Path, key: rsa.RSAPrivateKey, token_uri: str, project_id: str | None = PROJECT) -> Path:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "private_key_id": "4f1c0ffee5e1ec7ed0c0ffee5e1ec7ed0c0ffee5", "private_key": pem,
            "client_email": SA_EMAIL, "client_id": "104851204810000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{SA_EMAIL}",
            "universe_domain": "googleapis.com"}
    if project_id:
        info["project_id"] = project_id
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))
    return path


def write_authorized_user(path: Path, token_uri: str, quota_project: str | None = "zelda-quota-proj") -> Path:
    info = {"type": "authorized_user", "client_id": "764086051850-made-up.apps.googleusercontent.com",
            "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN, "token_uri": token_uri,
            "account": "", "universe_domain": "googleapis.com"}
    if quota_project:
        info["quota_project_id"] = quota_project
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return path


@pytest.fixture
def adc_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ADC anywhere (empty HOME, no variables) and no cached token: each test adds what it needs."""
    for name in (gcp_auth.ADC_ENV, gcp_auth.PROJECT_ENV, gcp_auth.CLOUDSDK_CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    gcp_auth.TOKENS.clear()
    return home


@pytest.fixture
def server():
    with ReplayServer() as srv:
        yield srv


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compute_requests(server: ReplayServer) -> list:
    return [r for r in server.requests if r.path.startswith("/compute/")]


def catalog_gcp() -> list:
    return [o for o in load_catalog() if o.provider == "gcp"]


def assert_catalog_fallback(offers: list, warnings: list[str], start: str, *parts: str) -> str:
    assert offers == catalog_gcp()
    assert len(warnings) == 1, warnings
    warning = warnings[0]
    assert warning.startswith(start) and warning.endswith("(showing the offline GCP catalog)"), warning
    assert "\n" not in warning
    for part in parts:
        assert part in warning, warning
    for secret in SECRETS:
        assert secret not in warning
    return warning


# --------------------------------------------------------------------------- the live path


def test_service_account_live_offers_priced_from_the_catalog(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server)
    route_compute(server)
    sa_file = write_service_account(tmp_path / "sa.json", rsa_key, f"{server.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_file))

    offers, warnings = search_offers(("gcp",), load_catalog(), {"gcp": f"{server.url}/compute/v1"}, gcp_retry=FAST_RETRY)

    # The token grant: one JWT-bearer POST, the assertion signed by our key, compute.readonly scope.
    [grant] = server.received("POST", "/token")
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(grant.body.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"] and set(form) == {"grant_type", "assertion"}
    head, claims, signature = form["assertion"][0].split(".")
    rsa_key.public_key().verify(b64url(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):  # the check above can fail: a changed claim breaks the signature
        rsa_key.public_key().verify(b64url(signature), f"{head}.{claims}x".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert json.loads(b64url(head)) == {"alg": "RS256", "typ": "JWT", "kid": "4f1c0ffee5e1ec7ed0c0ffee5e1ec7ed0c0ffee5"}
    payload = json.loads(b64url(claims))
    assert payload["iss"] == SA_EMAIL and payload["scope"] == "https://www.googleapis.com/auth/compute.readonly"
    assert payload["aud"] == "https://oauth2.googleapis.com/token" and payload["exp"] - payload["iat"] == 3600
    assert abs(payload["iat"] - time.time()) < 120

    # The Compute calls: the bearer token, both machineTypes pages, a name filter, then acceleratorTypes.
    calls = compute_requests(server)
    assert [r.path.rsplit("/", 1)[1] for r in calls] == ["machineTypes", "machineTypes", "acceleratorTypes"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in calls)
    assert all(r.path.startswith(f"/compute/v1/projects/{PROJECT}/aggregated/") for r in calls)
    first, second, acc = calls
    assert first.query["maxResults"] == ["500"] and "pageToken" not in first.query and second.query["pageToken"] == [PAGE_2]
    mt_filter = first.query["filter"][0]
    assert mt_filter.startswith('name eq "(') and "a2-ultragpu-1g" in mt_filter and "a3-highgpu-8g" in mt_filter
    assert "g2-standard" not in mt_filter
    assert acc.query["filter"] == ['name eq "(nvidia-a100-80gb|nvidia-h100-80gb)"']

    # The offers: right GPU, count, VRAM, zone and the catalog's price, date and source.
    by_id = {o.id: o for o in offers}
    assert set(by_id) == set(EXPECTED)  # us-central1-c has no A100, asia-southeast1 no price, g2/e2 not asked for
    for offer_id, (gpu, count, price) in EXPECTED.items():
        o = by_id[offer_id]
        assert (o.provider, o.gpu_name, o.num_gpus, o.gpu_ram, o.region) == ("gcp", gpu, count, 80.0, offer_id.split("@")[1])
        assert o.dph_total == price and o.available is True
        assert o.price_date == "2026 (undated)"
        assert o.price_source.startswith(CATALOG_SOURCE) and "live from the Compute API" in o.price_source
        assert o.raw["name"] == offer_id.split("@")[0]
    catalog = {o.id: o for o in catalog_gcp()}
    for offer_id, o in by_id.items():
        if offer_id in catalog:
            assert o.dph_total == catalog[offer_id].dph_total and (o.cpu_cores, o.cpu_ram) == (
                catalog[offer_id].cpu_cores, catalog[offer_id].cpu_ram)
    assert "price of us-central1-a, same region" in by_id["a2-ultragpu-1g@us-central1-f"].price_source
    assert (by_id["a3-highgpu-8g@us-central1-a"].cpu_cores, by_id["a3-highgpu-8g@us-central1-a"].cpu_ram) == (208.0, 1872.0)
    assert warnings == ["gcp: 1 live machine type/zone pair in asia-southeast1 has no price in the offline catalog "
                        "and is not shown"]
    assert all(TOKEN not in repr(o) for o in offers)


def test_token_is_reused_while_valid(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server)
    route_compute(server)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                                  f"{server.url}/token")))
    for _ in range(2):
        route_compute(server)  # re-arm the two machineTypes pages
        offers, _ = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1", retry=FAST_RETRY)
        assert len(offers) == len(EXPECTED)
    assert len(server.received("POST", "/token")) == 1 and len(compute_requests(server)) == 6


def test_authorized_user_from_the_gcloud_default_location(server, adc_env, tmp_path, monkeypatch):
    route_token(server)
    route_compute(server, project="zelda-quota-proj")
    gcloud = tmp_path / "gcloud-config"
    write_authorized_user(gcloud / "application_default_credentials.json", f"{server.url}/token")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))

    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1", retry=FAST_RETRY)

    [grant] = server.received("POST", "/token")
    form = parse_qs(grant.body.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": [REFRESH_TOKEN],
                    "client_id": ["764086051850-made-up.apps.googleusercontent.com"], "client_secret": [CLIENT_SECRET]}
    calls = compute_requests(server)
    assert len(calls) == 3 and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in calls)
    assert all(r.path.startswith("/compute/v1/projects/zelda-quota-proj/") for r in calls)  # quota_project_id
    assert {o.id for o in offers} == set(EXPECTED) and len(warnings) == 1


# --------------------------------------------------------------------------- failures -> warning + catalog


def test_token_endpoint_401_is_a_warning_and_the_catalog(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server, Reply.error(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}))
    route_compute(server)
    sa_file = write_service_account(tmp_path / "sa.json", rsa_key, f"{server.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_file))

    offers, warnings = search_offers(("gcp",), load_catalog(), {"gcp": f"{server.url}/compute/v1"}, gcp_retry=FAST_RETRY)

    host = server.url.removeprefix("http://")
    assert_catalog_fallback(offers, warnings, f"gcp: get access token: token endpoint {host} answered 401 "
                            "(invalid_client: The OAuth client was not found.)", str(sa_file))
    assert compute_requests(server) == []


def test_authorized_user_invalid_grant_is_a_warning(server, adc_env, tmp_path, monkeypatch):
    route_token(server, Reply.error(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_authorized_user(tmp_path / "user.json", f"{server.url}/token")))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1")
    assert_catalog_fallback(offers, warnings, "gcp: get access token:", "400", "invalid_grant: Token has been expired")


def test_token_endpoint_down_is_a_warning(adc_env, tmp_path, monkeypatch, rsa_key):
    with closed_port() as url:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                                      f"{url}/token")))
        offers, warnings = search_gcp(load_catalog(), base_url=f"{url}/compute/v1")
    assert_catalog_fallback(offers, warnings, "gcp: get access token: cannot reach token endpoint", "connection refused")


def test_compute_500s_after_retries_are_a_warning(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server)
    server.route("GET", f"/compute/v1/projects/{PROJECT}/aggregated/machineTypes",
                 Reply.error(500, {"error": {"code": 500, "message": "Internal error. Please try again."}}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                                  f"{server.url}/token")))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1", retry=FAST_RETRY)
    assert_catalog_fallback(offers, warnings, "gcp: list machine types: 500 server error after 3 attempts",
                            "Internal error. Please try again.")
    assert len(compute_requests(server)) == 3


def test_compute_403_echoing_the_token_is_redacted(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server)
    server.route("GET", f"/compute/v1/projects/{PROJECT}/aggregated/machineTypes", Reply.error(
        403, {"error": {"code": 403, "message": f"Required 'compute.machineTypes.list' permission for Bearer {TOKEN}"}}))
    sa_file = write_service_account(tmp_path / "sa.json", rsa_key, f"{server.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_file))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1", retry=FAST_RETRY)
    warning = assert_catalog_fallback(offers, warnings, "gcp: list machine types: 403 forbidden",
                                      "compute.machineTypes.list", f"check the credentials in {sa_file}")
    assert "Bearer ***" in warning


@pytest.mark.parametrize(("reply", "step", "what"), [
    (Reply.malformed(), "list accelerator types", "malformed JSON"),
    (Reply.json({"kind": "compute#acceleratorTypeAggregatedList", "items": ["zones/us-central1-a"]}),
     "list accelerator types", "unexpected answer"),
])
def test_odd_compute_answers_are_a_warning(server, adc_env, tmp_path, monkeypatch, rsa_key, reply, step, what):
    route_token(server)
    route_compute(server)
    server.route("GET", f"/compute/v1/projects/{PROJECT}/aggregated/acceleratorTypes", reply)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                                  f"{server.url}/token")))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1", retry=FAST_RETRY)
    assert_catalog_fallback(offers, warnings, f"gcp: {step}: {what}")


def test_repeated_page_token_is_an_error_not_a_loop(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server)
    page1, _ = machine_type_pages()
    server.route("GET", f"/compute/v1/projects/{PROJECT}/aggregated/machineTypes", Reply.json(page1))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                                  f"{server.url}/token")))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1", retry=FAST_RETRY)
    assert_catalog_fallback(offers, warnings, "gcp: list machine types: the server repeated a page token")
    assert len(compute_requests(server)) == 2


# --------------------------------------------------------------------------- no live attempt


def test_no_adc_at_all_is_the_catalog_without_a_network_call(server, adc_env):
    route_token(server)
    route_compute(server)
    assert gcp_auth.find_adc_file() is None
    offers, warnings = search_offers(("gcp",), load_catalog(), {"gcp": f"{server.url}/compute/v1"})
    assert offers == catalog_gcp() and len(offers) == 48 and warnings == []
    assert server.requests == []


def test_missing_google_auth_says_to_install_the_extra(server, adc_env, tmp_path, monkeypatch, rsa_key):
    route_token(server)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                                  f"{server.url}/token")))
    for name in ("google.auth.exceptions", "google.auth.transport.requests", "google.oauth2.credentials",
                 "google.oauth2.service_account", "requests"):
        monkeypatch.setitem(sys.modules, name, None)  # what `import` sees when a package is not installed
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1")
    assert_catalog_fallback(offers, warnings, "gcp: get access token: google-auth is not installed",
                            "pip install 'zelda-tui[gcp]'")
    assert server.requests == []


@pytest.mark.parametrize(("content", "what"), [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    ('{"type": "external_account", "audience": "x"}', "credentials type 'external_account' is not supported"),
    ('{"type": "service_account", "client_email": "a@b"}', "service_account file lacks private_key, token_uri"),
    ('{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r", '
     '"token_uri": "http://oauth.example.com/token"}', "token_uri must be an https URL"),
])
def test_broken_credentials_files_are_a_warning_naming_the_file(server, adc_env, tmp_path, monkeypatch, content, what):
    path = tmp_path / "adc.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    offers, warnings = search_gcp(load_catalog(), project=PROJECT, base_url=f"{server.url}/compute/v1")
    assert_catalog_fallback(offers, warnings, f"gcp: read credentials: {path} ($GOOGLE_APPLICATION_CREDENTIALS): {what}")
    assert server.requests == []


def test_unusable_private_key_is_a_warning_without_the_key(server, adc_env, tmp_path, monkeypatch, rsa_key):
    path = write_service_account(tmp_path / "sa.json", rsa_key, f"{server.url}/token")
    info = json.loads(path.read_text())
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-made-up-broken-key"
    info["private_key"] = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1")
    warning = assert_catalog_fallback(offers, warnings, f"gcp: read credentials: {path}", "google-auth cannot use it")
    assert body not in warning and server.requests == []


def test_no_project_anywhere_is_a_warning(server, adc_env, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS",
                       str(write_authorized_user(tmp_path / "user.json", f"{server.url}/token", quota_project=None)))
    offers, warnings = search_gcp(load_catalog(), base_url=f"{server.url}/compute/v1")
    assert_catalog_fallback(offers, warnings, "gcp: project: no project — set [providers.gcp] project")
    assert server.requests == []


# --------------------------------------------------------------------------- discovery, project, secrets


def test_adc_discovery_order(adc_env, tmp_path, monkeypatch):
    home_file = adc_env / ".config" / "gcloud" / "application_default_credentials.json"
    home_file.parent.mkdir(parents=True)
    home_file.write_text("{}")
    assert gcp_auth.find_adc_file() == gcp_auth.AdcLocation(home_file, "gcloud default")
    sdk = tmp_path / "sdk"
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(sdk))
    assert gcp_auth.find_adc_file() is None  # $CLOUDSDK_CONFIG replaces ~/.config/gcloud; nothing there
    (sdk / "application_default_credentials.json").parent.mkdir()
    (sdk / "application_default_credentials.json").write_text("{}")
    assert gcp_auth.find_adc_file().path == sdk / "application_default_credentials.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert gcp_auth.find_adc_file() == gcp_auth.AdcLocation(tmp_path / "missing.json", "$GOOGLE_APPLICATION_CREDENTIALS")


def test_project_precedence(adc_env, tmp_path, monkeypatch, rsa_key):
    location = gcp_auth.AdcLocation(write_service_account(tmp_path / "sa.json", rsa_key, "https://oauth2.googleapis.com/token",
                                                          project_id="file-proj"), "test")
    adc = gcp_auth.read_adc_file(location)
    assert gcp_auth.resolve_project(None, adc) == "file-proj"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
    assert gcp_auth.resolve_project("", adc) == "env-proj"
    assert gcp_auth.resolve_project("config-proj", adc) == "config-proj"
    user = gcp_auth.read_adc_file(gcp_auth.AdcLocation(write_authorized_user(tmp_path / "u.json", "https://x.test/t"), "t"))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert gcp_auth.resolve_project(None, user) == "zelda-quota-proj"
    with pytest.raises(ZeldaError, match="is not a project id"):
        gcp_auth.resolve_project("proj/../../other", adc)
    with pytest.raises(ZeldaError, match=r"\[providers.gcp\] project must be a string"):
        gcp_auth.resolve_project(42, adc)


def test_secrets_stay_out_of_reprs(adc_env, tmp_path, rsa_key):
    user = gcp_auth.read_adc_file(gcp_auth.AdcLocation(write_authorized_user(tmp_path / "u.json", "https://x.test/t"), "t"))
    sa = gcp_auth.read_adc_file(gcp_auth.AdcLocation(write_service_account(tmp_path / "sa.json", rsa_key,
                                                                           "https://x.test/t"), "t"))
    key_line = sa.info["private_key"].splitlines()[1]
    for text in (repr(user), repr(sa), repr(gcp_auth.TOKENS), repr(GcpClient(PROJECT, access_token=TOKEN))):
        for secret in (*SECRETS, key_line, "4f1c0ffee5e1ec7ed0c0ffee5e1ec7ed0c0ffee5"):
            assert secret not in text, text
    assert user.scrub(f"echo {REFRESH_TOKEN} {CLIENT_SECRET}") == "echo *** ***"
    assert key_line not in sa.scrub(f"oops {sa.info['private_key']}")


# --------------------------------------------------------------------------- through the real CLI


def test_cli_offers_search_gcp_live(server, adc_env, tmp_path, small_ws, rsa_key):
    route_token(server)
    route_compute(server)
    sa_file = write_service_account(tmp_path / "sa.json", rsa_key, f"{server.url}/token", project_id="not-this-one")
    text = small_ws.read_text().replace('base = "local/tiny"', 'base = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"')
    small_ws.write_text(text.replace("max_seq_len = 64", "max_seq_len = 4096") + (
        f'\n[phases.0]\nmix = "small"\n\n[providers.gcp]\nproject = "{PROJECT}"\nbase_url = "{server.url}/compute/v1"\n'))

    res = run_cli("offers", "search", "--provider", "gcp", "--json", "--query", "", "--config", str(small_ws),
                  env={"GOOGLE_APPLICATION_CREDENTIALS": str(sa_file), "GOOGLE_CLOUD_PROJECT": "", "HOME": str(adc_env)})

    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    rows = {r["id"]: r for r in data["offers"]}
    assert set(rows) == set(EXPECTED)
    for offer_id, (gpu, count, price) in EXPECTED.items():
        r = rows[offer_id]
        assert (r["key"], r["gpu_name"], r["num_gpus"], r["gpu_ram"], r["dph_total"]) == (f"gcp:{offer_id}", gpu, count, 80.0, round(price, 4))
        assert r["price_date"] == "2026 (undated)" and r["price_source"].startswith(CATALOG_SOURCE)
        assert r["fit"] in ("fits", "tight", "does-not-fit") and r["hours"] is not None
    assert data["warnings"] == ["gcp: 1 live machine type/zone pair in asia-southeast1 has no price in the offline "
                                "catalog and is not shown"]
    calls = compute_requests(server)
    assert len(calls) == 3 and all(f"/projects/{PROJECT}/" in r.path for r in calls)  # config project wins
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in calls)
    assert TOKEN not in res.stdout + res.stderr
