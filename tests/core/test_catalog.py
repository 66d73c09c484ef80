"""The offline dated catalog: committed data, rebuilt from the provider fixtures, browsable with the query."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from zelda_tui.core.catalog import DATA_DIR, build_catalog_data, load_catalog
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.offer_query import DEFAULT_QUERY, filter_offers, sort_offers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_loads_gcp_a100_and_h100_shapes_in_several_zones(catalog):
    gcp = [o for o in catalog if o.provider == "gcp"]
    machine_types = {o.raw["machine_type"] for o in gcp}
    assert machine_types == {f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)} | {f"a3-highgpu-{n}g" for n in (1, 2, 4, 8)}
    zones = {mt: {o.region for o in gcp if o.raw["machine_type"] == mt} for mt in machine_types}
    assert all(len(z) >= 3 for z in zones.values()), zones
    for o in gcp:
        assert o.dph_total > 0 and o.gpu_ram == 80.0 and o.num_gpus == int(o.raw["machine_type"].split("-")[-1][:-1])
        assert o.price_date and "2026" in o.price_date
        assert o.price_source.startswith("catalog: ") and "skypilot-catalog" in o.price_source
        assert o.key == f"gcp:{o.raw['machine_type']}@{o.region}"
        # price = host VM + accelerators (SkyPilot), from the verbatim rows kept in raw
        assert o.dph_total == pytest.approx(float(o.raw["vm"]["Price"]) + float(o.raw["accelerator"]["Price"]))
    names = Counter(o.gpu_name for o in gcp)
    assert names["NVIDIA A100 80GB"] >= 8 and names["NVIDIA H100 80GB"] >= 8
    a2_1g = {o.region: o.dph_total for o in gcp if o.raw["machine_type"] == "a2-ultragpu-1g"}
    assert a2_1g["us-central1-a"] == pytest.approx(1.09962 + 1.8462)


def test_loads_vultr_gpu_plans(catalog):
    vultr = {o.id: o for o in catalog if o.provider == "vultr"}
    assert set(vultr) == {
        "vcg-a100-1c-6g-4vram@ewr", "vcg-a100-12c-120g-80vram@ewr", "vcg-a100-6c-60g-40vram@ewr",
        "vbm-256c-2048gb-8-mi300x-gpu@ord", "vbm-112c-2048gb-8-h100-gpu@sea",
    }
    a100 = vultr["vcg-a100-12c-120g-80vram@ewr"]
    assert (a100.gpu_name, a100.num_gpus, a100.gpu_ram, a100.dph_total, a100.cpu_ram) == ("NVIDIA A100", 1, 80.0, 2.397, 120.0)
    assert a100.raw["gpu_type"] == "NVIDIA_A100" and a100.price_date.startswith("2024-12")
    h100 = vultr["vbm-112c-2048gb-8-h100-gpu@sea"]
    assert (h100.num_gpus, h100.gpu_ram, h100.dph_total) == (8, 80.0, 23.92)
    assert all(o.dph_total > 0 and o.price_date and "gpuhunt" in o.price_source for o in vultr.values())


def test_default_query_finds_gcp_and_vultr_a100_80gb(catalog):
    hits = sort_offers(filter_offers(catalog, DEFAULT_QUERY), "dph_total")
    assert {o.provider for o in hits} == {"gcp", "vultr"}
    assert all("A100" in o.gpu_name and o.gpu_ram >= 80 for o in hits)
    assert "vultr:vcg-a100-12c-120g-80vram@ewr" in [o.key for o in hits]
    assert {o.raw["machine_type"] for o in hits if o.provider == "gcp"} == {f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)}
    assert "vultr:vcg-a100-1c-6g-4vram@ewr" not in [o.key for o in hits]  # a 4 GB slice
    assert [o.dph_total for o in hits] == sorted(o.dph_total for o in hits)
    h100s = filter_offers(catalog, "gpu_name=H100 num_gpus=8 region in [us-central1-a,sea]")
    assert sorted(o.key for o in h100s) == ["gcp:a3-highgpu-8g@us-central1-a", "vultr:vbm-112c-2048gb-8-h100-gpu@sea"]


def test_committed_data_is_what_the_fixtures_build():
    for name, doc in build_catalog_data(FIXTURES).items():
        assert json.loads((DATA_DIR / name).read_text(encoding="utf-8")) == doc, name
        for entry in doc["entries"]:
            src = doc["sources"][entry["source"]]
            assert src["file"] and src["upstream"] and src["date"] and entry["price_date"]


def test_broken_catalog_file_is_a_zelda_error(tmp_path):
    (tmp_path / "gcp.json").write_text('{"provider": "gcp", "sources": {}, "entries": [{"id": "x"}]}')
    (tmp_path / "vultr.json").write_text("{}")
    with pytest.raises(ZeldaError) as info:
        load_catalog(tmp_path)
    assert "gcp.json" in info.value.message and "entries[0]" in info.value.message


def test_rows_mean_what_vastai_fields_mean(catalog):
    """Country codes and vCPUs as `vastai search offers` uses them, so one query selects across providers."""
    by_key = {o.key: o for o in catalog}
    assert by_key["gcp:a2-ultragpu-1g@us-central1-a"].geolocation == "US"
    assert by_key["gcp:a2-ultragpu-1g@europe-west4-a"].geolocation == "NL"  # Eemshaven, per Google's locations
    assert {o.geolocation for o in catalog if o.provider == "vultr"} == {"US"}  # ewr, ord, sea
    in_us = filter_offers(catalog, "geolocation=US")
    assert in_us and all(o.region.startswith("us-") or o.provider == "vultr" for o in in_us)
    assert filter_offers(catalog, "region=US") == in_us
    assert {o.region[:-2] for o in filter_offers(catalog, "geolocation notin [US]")} == {"europe-west4"}
    assert by_key["gcp:a3-highgpu-8g@us-central1-a"].cpu_cores == 208.0  # vCPUs of the machine type
    assert by_key["vultr:vbm-112c-2048gb-8-h100-gpu@sea"].cpu_cores == 224.0  # bare metal: CPU threads
