"""Offer queries answer as `vastai search offers` does, checked against vastai's own parser.

vastai 1.9.1 is a test dependency (`make setup` installs it with `--no-deps`: its own dependencies pin
packages that clash with ours). Only its `vastai/api/query.py` is loaded, from the installed file (it
uses the standard library alone); `vastai/__init__.py` and its imports never run, and nothing goes to
the network.

For every query of `CASES`, on the 33 recorded real Vast offers and on 200 offers varied from them:

* vastai's answer: `parse_query(query)` over the CLI's defaults gives the API filters; `vast_server`
  applies them to the offers the way Vast's server does;
* ours: the filters our Vast client sends (`query_filters`) must equal vastai's for every key we send
  (we leave out only what vastai would send and we filter locally: an unquoted `gpu_name`); the server
  applies them, then our local filter runs; both must give the same offer ids. The local filter alone
  must also agree with vastai's query without defaults (`vastai search offers -n`).

Kept differences, on purpose (see `core.offer_query`): `gpu_name=A100` matches whole words (compared with
vastai's `gpu_name in [A100_SXM4,A100_PCIE]`, the full names the offers carry) and a quoted name is exact;
`region=US` also matches the country code (compared with vastai's `geolocation=US`).
"""

from __future__ import annotations

import ast
import copy
import importlib.metadata
import importlib.util
import json
import random
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.backends.replay_server import Reply, ReplayServer
from zelda_tui.backends.providers import vast
from zelda_tui.backends.providers.search import search_offers
from zelda_tui.backends.providers.vast import VastClient, offer_from_vast, query_filters
from zelda_tui.core.offer_query import ALIASES, VAST_API_FIELDS, QueryError, filter_offers, parse

VASTAI_VERSION = "1.9.1"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "vast" / "search_offers.json"

# (our query, vastai's equivalent where the text differs on purpose)
CASES: list[tuple[str, str | None]] = [
    ("", None),
    ("geolocation=US", None),
    ("geolocation in [US,CA]", None),
    ("geolocation notin [US,CA]", None),
    ("geolocation!=US", None),
    ("geolocation=SE num_gpus>=2", None),
    ("region=US", "geolocation=US"),
    ("region in [US,CA]", "geolocation in [US,CA]"),
    ("region notin [US]", "geolocation notin [US]"),
    ("cpu_cores>=32", None),
    ("cpu_cores<24", None),
    ("cpu_cores=128", None),
    ("cpu_cores_effective>=32", None),
    ("verified=true", None),
    ("verified=false", None),
    ("verified=any", None),
    ("external=false", None),
    ("external=true", None),
    ("external=any", None),
    ("rentable=any", None),
    ("rentable=false", None),
    ("rentable=true", None),
    ("verified=any external=any rentable=any", None),
    ("verified=false verification=deverified", None),
    ("verification=verified", None),
    ("gpu_ram>=80", None),
    ("gpu_ram<40", None),
    ("gpu_ram>=24 gpu_ram<=41", None),
    ("gpu_total_ram>=160", None),
    ("cpu_ram>=256", None),
    ("num_gpus in [1,2]", None),
    ("num_gpus notin [1,2]", None),
    ("num_gpus=8", None),
    ("num_gpus>=4", None),
    ("num_gpus!=1", None),
    ("dph<1", None),
    ("dph_total<=2.5", None),
    ("reliability>0.99", None),
    ("reliability>=0.98 dph<3", None),
    ("disk_space>1000", None),
    ("inet_down>=1000", None),
    ("inet_up>500", None),
    ("duration>=30", None),
    ("compute_cap=800", None),
    ("driver_version>=565.57.01", None),
    ("cuda_vers>=12.8", None),
    ("dlperf_usd>100", None),
    ("flops_usd>20", None),
    ("pci_gen>=4", None),
    ("static_ip=false", None),
    ("host_id!=150140", None),
    ("id=39185351", None),
    ("gpu_ram>=80 gpu_ram=any num_gpus=2", None),
    ("num_gpus>=2 gpu_ram>=40 geolocation in [US,SE,CZ] rentable=any", None),
    ('gpu_name="A100 SXM4"', None),
    ('gpu_name in ["A100 PCIE","H100 SXM"]', None),
    ("gpu_name=A100", "gpu_name in [A100_SXM4,A100_PCIE]"),
    ("gpu_name=A100 gpu_ram>=80", "gpu_name in [A100_SXM4,A100_PCIE] gpu_ram>=80"),
    ("gpu_name!=H100_SXM verified=false", None),
]


# --------------------------------------------------------------------------- vastai, loaded from its file


@pytest.fixture(scope="module")
def vastai_query() -> ModuleType:
    """vastai's `vastai/api/query.py`, executed alone (the package's `__init__` is never run)."""
    spec = importlib.util.find_spec("vastai")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"vastai {VASTAI_VERSION} is not installed: `make setup` (or "
                    f"`.venv/bin/python -m pip install --no-deps vastai=={VASTAI_VERSION}`)", pytrace=False)
    assert importlib.metadata.version("vastai") == VASTAI_VERSION
    path = Path(spec.submodule_search_locations[0]) / "api" / "query.py"
    mod_spec = importlib.util.spec_from_file_location("vastai_api_query", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cli_defaults(vastai_query) -> dict[str, Any]:
    """The defaults `vastai search offers` starts from, read from its CLI source (not copied by hand)."""
    source = (Path(vastai_query.__file__).parents[1] / "cli" / "commands" / "offers.py").read_text()
    return ast.literal_eval(re.search(r'query = (\{"verified".*\})\s*$', source, re.M).group(1))


def vastai_filters(vastai_query, defaults: dict, text: str) -> dict[str, Any]:
    """`vastai search offers TEXT`'s API filters (`-n`: defaults = {})."""
    return vastai_query.parse_query(text, copy.deepcopy(defaults), vastai_query.offers_fields,
                                    vastai_query.offers_alias, vastai_query.offers_mult)


# --------------------------------------------------------------------------- the server, as a reference


def vast_server(filters: dict[str, dict[str, Any]], offers: list[dict], numeric_version) -> list[dict]:
    """The offers Vast's `/bundles/` returns for `filters`, by these rules:

    * `geolocation` compares the two-letter country code after the last comma (`"Georgia, US"` -> `US`);
    * `verified` is `verification == "verified"` (a bool `verified` key wins where a payload has one);
    * `external` null is false;
    * numbers compare numerically on the raw API units (MB, seconds), the sent text as a float
      (vastai sends `num_gpus>=4` as "4", `gpu_ram>=80` as 80000.0); `driver_version` as vastai's
      `numeric_version`;
    * strings compare exactly (case included), booleans as booleans;
    * a null offer value passes only `=null` (not exercised: every field the cases use is set).
    Every condition must hold.
    """

    def value(raw: dict, field: str) -> Any:
        if field == "geolocation":
            return raw["geolocation"].rsplit(",", 1)[-1].strip() if raw.get("geolocation") else None
        if field == "verified":
            return raw["verified"] if isinstance(raw.get("verified"), bool) else raw.get("verification") == "verified"
        if field == "external":
            return bool(raw.get("external"))
        if field == "driver_version":
            return numeric_version(raw["driver_version"])
        return raw.get(field)

    def coerce(have: Any, want: Any) -> Any:
        if isinstance(have, (int, float)) and not isinstance(have, bool) and isinstance(want, str):
            return float(want)
        return want

    def holds(have: Any, op: str, want: Any) -> bool:
        if have is None:
            return op == "eq" and want is None
        if op in ("in", "notin"):
            hit = have in [coerce(have, w) for w in want]
            return hit if op == "in" else not hit
        w = coerce(have, want)
        if w is None:
            return op == "neq"
        return {"eq": have == w, "neq": have != w}.get(op) if op in ("eq", "neq") else {
            "lt": lambda: have < w, "lte": lambda: have <= w, "gt": lambda: have > w, "gte": lambda: have >= w,
        }[op]()

    return [r for r in offers if all(holds(value(r, f), op, want) for f, ops in filters.items() for op, want in ops.items())]


# --------------------------------------------------------------------------- offers


@pytest.fixture(scope="module")
def recorded() -> list[dict]:
    return json.loads(FIXTURE.read_text())["offers"]


@pytest.fixture(scope="module")
def varied(recorded) -> list[dict]:
    """200 offers varied from the recorded ones (seeded): country, cores, verification, external,
    rentable, GPU count, name and memory; `reliability2` follows `reliability` as in every capture."""
    rnd = random.Random(20)
    places = ["Texas, US", "Georgia, US", "Ontario, CA", "Quebec, CA", "Sweden, SE", "Czechia, CZ", "Bavaria, DE",
              "Tokyo, JP", "The Netherlands, NL", "District of Columbia, US"]
    gpus = [("A100 SXM4", 81920), ("A100 SXM4", 40960), ("A100 PCIE", 40960), ("H100 SXM", 81920), ("RTX 4090", 24564)]
    out = []
    for i in range(200):
        r = copy.deepcopy(recorded[i % len(recorded)])
        n = rnd.choice([1, 1, 2, 4, 8])
        name, mb = rnd.choice(gpus)
        cores = rnd.choice([8, 16, 24, 32, 48, 64, 128])
        rel = round(rnd.uniform(0.95, 1.0), 5)
        r.update(id=90_000_000 + i, ask_contract_id=90_000_000 + i, geolocation=rnd.choice(places), cpu_cores=cores,
                 cpu_cores_effective=cores / rnd.choice([1, 2, 4]), verification=rnd.choice(["verified", "verified", "unverified", "deverified"]),
                 external=rnd.choice([None, None, False, True]), rentable=rnd.random() < 0.8, num_gpus=n,
                 gpu_name=name, gpu_ram=mb, gpu_total_ram=mb * n, reliability=rel, reliability2=rel,
                 dph_total=round(rnd.uniform(0.2, 3.0) * n, 4), cpu_ram=rnd.choice([64_000, 128_803, 256_000, 512_000]))
        out.append(r)
    return out


def ids(offers) -> list[str]:
    return [str(o["id"]) if isinstance(o, dict) else o.id for o in offers]


# --------------------------------------------------------------------------- the checks


def test_our_tables_are_vastais(vastai_query, cli_defaults):
    """Field names, aliases, units and defaults: a change in vastai fails here first."""
    assert VAST_API_FIELDS == vastai_query.offers_fields
    assert ALIASES == vastai_query.offers_alias
    assert vast.API_MULTIPLIERS == vastai_query.offers_mult
    assert vast.DEFAULT_FILTERS == cli_defaults


@pytest.mark.parametrize("which", ["recorded", "varied"])
@pytest.mark.parametrize("query, theirs", CASES, ids=[q or "(empty)" for q, _ in CASES])
def test_same_offers_as_vastai(query, theirs, which, request, vastai_query, cli_defaults):
    offers = request.getfixturevalue(which)
    nv = vastai_query.numeric_version
    their_filters = vastai_filters(vastai_query, cli_defaults, theirs or query)
    expected = ids(vast_server(their_filters, offers, nv))

    ours = query_filters(parse(query))
    assert VastClient.search_body(ours, defaults=False) == {**ours, "type": "on-demand"}
    assert {k: their_filters.get(k) for k in ours} == ours  # the request we send is vastai's ...
    local_only = {"geolocation" if c.field == "region" else c.field for c in parse(query)
                  if c.field == "region" or (c.field == "gpu_name" and not c.quoted)}
    assert set(their_filters) - set(ours) == local_only  # ... but for what only we filter, locally
    served = [offer_from_vast(r) for r in vast_server(ours, offers, nv)]
    assert ids(filter_offers(served, query)) == expected

    # the local filter alone, against `vastai search offers -n` (no defaults)
    everything = [offer_from_vast(r) for r in offers]
    assert ids(filter_offers(everything, query)) == ids(vast_server(vastai_filters(vastai_query, {}, theirs or query), offers, nv))


def test_the_table_exercises_both_sides(recorded, varied, vastai_query, cli_defaults):
    """The cases are not vacuous: most select some offers and leave others out."""
    nv = vastai_query.numeric_version
    sizes = [len(vast_server(vastai_filters(vastai_query, cli_defaults, t or q), varied, nv)) for q, t in CASES]
    assert sum(0 < s < len(varied) for s in sizes) >= 45, sizes
    us = vast_server(vastai_filters(vastai_query, cli_defaults, "geolocation in [US,CA]"), recorded, nv)
    assert len(us) == 18 and len(vast_server(vastai_filters(vastai_query, cli_defaults, "cpu_cores>=32"), recorded, nv)) == 27


def test_search_widens_vastais_defaults_through_the_api(varied, vastai_query, cli_defaults, monkeypatch):
    """`verified=false rentable=any` reaches Vast as vastai sends it, so the unverified and the not
    rentable offers Vast then returns are listed (a fixed default request could never bring them back)."""
    query = "verified=false rentable=any num_gpus>=2"
    their_filters = vastai_filters(vastai_query, cli_defaults, query)
    answer = vast_server(their_filters, varied, vastai_query.numeric_version)
    assert answer and any(not r["rentable"] for r in answer)
    monkeypatch.setenv(vast.KEY_ENV, "test-key")
    with ReplayServer() as server:
        server.route("POST", "/api/v0/bundles/", Reply.json({"offers": answer}))
        offers, warnings = search_offers(("vast",), [], {"vast": server.url + "/api/v0"}, query=parse(query))
        (req,) = server.received("POST", "/api/v0/bundles/")
    assert warnings == []
    assert req.json() == {**their_filters, "type": "on-demand"}
    assert ids(filter_offers(offers, query)) == ids(answer)


@pytest.mark.parametrize("query", ["gpu_ram>=abc", "cpu_ram<lots", "gpu_name!=any", "num_gpus>*"])
def test_rejected_where_vastai_rejects(query, vastai_query, cli_defaults):
    """vastai refuses these (ValueError); we give the caret error instead of a filter that matches nothing."""
    with pytest.raises(ValueError):
        vastai_filters(vastai_query, cli_defaults, query)
    with pytest.raises(QueryError) as info:
        parse(query)
    assert info.value.exit_code == 2
