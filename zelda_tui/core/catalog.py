"""Offline dated price catalog: GCP and Vultr GPU shapes as `Offer`s, so the browser works without keys.

The data is committed in `catalog_data/{gcp,vultr}.json`; `load_catalog()` reads it. Every entry keeps its
price date and the id of its source; each file's `sources` names the fixture file, the upstream file at
its commit and the date. `build_catalog_data()` is how the JSON was derived from the provider fixtures
(`tests/fixtures/providers/`, see PROVENANCE.md there); regenerate with

    .venv/bin/python -c "from zelda_tui.core import catalog; catalog.write_catalog_data('tests/fixtures/providers')"

(tests/core/test_catalog.py checks that the committed files equal what this builds).

What the entries are (fields mean what `vastai search offers` filters on, see `core.offers`: `cpu_cores`
= the machine's vCPUs, `geolocation` = its two-letter country code from `country_code`, so
`geolocation=US` / `region=US` select GCP `us-*` zones and Vultr `ewr`, `europe-west4-a` is `NL`):

* **gcp**: one entry per (machine type, zone) for `a2-ultragpu-{1,2,4,8}g` (A100 80GB) and
  `a3-highgpu-{1,2,4,8}g` (H100 80GB) in the zones of the SkyPilot catalog slice (europe-west4,
  us-central1, us-east4). On-demand price = host VM row `Price` + accelerator row `Price` for the same
  zone and GPU count (how SkyPilot prices these machine types); `raw` = both CSV rows verbatim.
  `gpu_ram` = GpuInfo `SizeInMiB` / 1024; `cpu_ram` = `MemoryGiB`; `disk_space` = 0 (the boot disk is
  chosen at launch, it is not part of the machine type). `id` = `machine_type@zone`. The data's date is
  unknown (skypilot-catalog commit, fixture collected in 2026): `price_date` says so.
* **vultr**: one entry per (plan, location) for the Cloud GPU (`vcg`) plans and the GPU bare-metal plans.
  `raw` = the plan object verbatim. `gpu_vram_gb` is for the whole plan (a fractional plan such as
  `vcg-a100-1c-6g-4vram` is a 4 GB slice of one A100: num_gpus 1, gpu_ram 4). Bare-metal plans carry no
  GPU fields: the GPU count comes from the plan id (`...-8-h100-gpu`) and the per-GPU memory from the
  GPU model's spec (H100 SXM 80 GB, MI300X 192 GB); the entry's `derived` says so. `region_availability.json`
  is the spec's example (vc2/vdc/vhf ids only, no region named), so it says nothing about GPU plans:
  regions come from each plan's `locations`. `id` = `plan@region`.
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path
from typing import Any

from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.offers import Offer, country_code

DATA_DIR = Path(__file__).parent / "catalog_data"
CATALOG_FILES = ("gcp.json", "vultr.json")

# --------------------------------------------------------------------------- loading


def load_catalog(data_dir: Path | None = None) -> list[Offer]:
    """Every catalog entry as an `Offer` (provider "gcp"/"vultr", `price_date` = the data's date,
    `price_source` = "catalog: <source>")."""
    offers: list[Offer] = []
    for name in CATALOG_FILES:
        offers.extend(_load_file((data_dir or DATA_DIR) / name))
    return offers


def _load_file(path: Path) -> list[Offer]:
    i = -1
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        sources = doc["sources"]
        out = []
        for i, e in enumerate(doc["entries"]):
            src = sources[e["source"]]
            out.append(
                Offer(
                    provider=doc["provider"],
                    id=e["id"],
                    gpu_name=e["gpu_name"],
                    num_gpus=int(e["num_gpus"]),
                    gpu_ram=float(e["gpu_ram"]),
                    cpu_cores=float(e["cpu_cores"]),
                    cpu_ram=float(e["cpu_ram"]),
                    disk_space=float(e["disk_space"]),
                    dph_total=float(e["dph_total"]),
                    region=e["region"],
                    geolocation=e["geolocation"],
                    available=bool(e.get("available", True)),
                    price_date=e["price_date"],
                    price_source=f"catalog: {src['upstream']} ({src['date']}), via {src['file']}",
                    raw=e["raw"],
                )
            )
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        where = f"entries[{i}]" if i >= 0 else "file"
        raise ZeldaError(f"{path} [{where}]: broken offer catalog ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- building (from the fixtures)

GCP_SOURCE = {
    "file": "tests/fixtures/providers/gcp/skypilot_vms_slice.csv",
    "upstream": "github.com/skypilot-org/skypilot-catalog catalogs/v9/gcp/vms.csv @ 2c3d7ea7",
    "date": "data date unknown; fixture collected 2026",
}
GCP_PRICE_DATE = "2026 (undated)"
GCP_SHAPES = {  # machine-type prefix -> (SkyPilot accelerator name, display GPU name)
    "a2-ultragpu-": ("A100-80GB", "NVIDIA A100 80GB"),
    "a3-highgpu-": ("H100", "NVIDIA H100 80GB"),
}

VULTR_SOURCES = {
    "gpuhunt-vm": {
        "file": "tests/fixtures/providers/vultr/plans.json",
        "upstream": "github.com/dstackai/gpuhunt src/tests/providers/test_vultr.py @ 91eca445 (vm_instances)",
        "date": "captured ~2024-12, committed 2025-01-08",
    },
    "gpuhunt-metal": {
        "file": "tests/fixtures/providers/vultr/plans_metal.json",
        "upstream": "github.com/dstackai/gpuhunt src/tests/providers/test_vultr.py @ 91eca445 (bare_metal)",
        "date": "captured ~2024-12, committed 2025-01-08",
    },
}
VULTR_PRICE_DATE = "2024-12 (approx.)"
# Bare-metal plans have no GPU fields: model in the plan id -> (display name, GB per GPU from the GPU spec).
VULTR_METAL_GPUS = {"h100": ("NVIDIA H100 80GB", 80), "mi300x": ("AMD MI300X", 192)}


def _gcp_entries(csv_path: Path) -> list[dict[str, Any]]:
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    acc = {(r["AcceleratorName"], r["AcceleratorCount"], r["AvailabilityZone"]): r for r in rows if not r["InstanceType"]}
    entries = []
    for vm in rows:
        mt = vm["InstanceType"]
        prefix = next((p for p in GCP_SHAPES if mt.startswith(p)), None)
        if prefix is None:
            continue
        count = mt[len(prefix) :].rstrip("g")
        acc_name, display = GCP_SHAPES[prefix]
        a = acc.get((acc_name, count, vm["AvailabilityZone"]))
        if a is None:  # no accelerator price for this zone in the slice: no complete price, skip
            continue
        mib = ast.literal_eval(a["GpuInfo"])["Gpus"][0]["MemoryInfo"]["SizeInMiB"]
        entries.append(
            {
                "id": f"{mt}@{vm['AvailabilityZone']}",
                "gpu_name": display,
                "num_gpus": int(count),
                "gpu_ram": mib / 1024,
                "cpu_cores": float(vm["vCPUs"]),
                "cpu_ram": float(vm["MemoryGiB"]),
                "disk_space": 0.0,
                "dph_total": round(float(vm["Price"]) + float(a["Price"]), 5),
                "region": vm["AvailabilityZone"],
                "geolocation": country_code("gcp", vm["AvailabilityZone"]),
                "price_date": GCP_PRICE_DATE,
                "source": "skypilot-gcp",
                "raw": {"machine_type": mt, "vm": vm, "accelerator": a},
            }
        )
    return entries


def _vultr_entries(plans: dict[str, Any], metal: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for p in plans["plans"]:
        if p.get("type") != "vcg" or not p.get("gpu_type"):
            continue
        for loc in p["locations"]:
            entries.append(
                {
                    "id": f"{p['id']}@{loc}",
                    "gpu_name": p["gpu_type"].replace("_", " "),
                    "num_gpus": 1,
                    "gpu_ram": float(p["gpu_vram_gb"]),
                    "cpu_cores": float(p["vcpu_count"]),
                    "cpu_ram": p["ram"] / 1024,
                    "disk_space": float(p["disk"] * p.get("disk_count", 1)),
                    "dph_total": float(p["hourly_cost"]),
                    "region": loc,
                    "geolocation": country_code("vultr", loc),
                    "price_date": VULTR_PRICE_DATE,
                    "source": "gpuhunt-vm",
                    "raw": p,
                }
            )
    for p in metal["plans_metal"]:
        parts = p["id"].split("-")  # vbm-112c-2048gb-8-h100-gpu
        if parts[-1] != "gpu" or parts[-2] not in VULTR_METAL_GPUS:
            continue
        display, gb = VULTR_METAL_GPUS[parts[-2]]
        for loc in p["locations"]:
            entries.append(
                {
                    "id": f"{p['id']}@{loc}",
                    "gpu_name": display,
                    "num_gpus": int(parts[-3]),
                    "gpu_ram": float(gb),
                    "cpu_cores": float(p["cpu_threads"]),
                    "cpu_ram": p["ram"] / 1024,
                    "disk_space": float(p["disk"] * p.get("disk_count", 1)),
                    "dph_total": float(p["hourly_cost"]),
                    "region": loc,
                    "geolocation": country_code("vultr", loc),
                    "price_date": VULTR_PRICE_DATE,
                    "source": "gpuhunt-metal",
                    "derived": {"num_gpus": "from the plan id", "gpu_ram": f"{display} spec: {gb} GB per GPU"},
                    "raw": p,
                }
            )
    return entries


def build_catalog_data(fixtures: Path | str) -> dict[str, dict[str, Any]]:
    """The catalog documents (file name -> JSON object) derived from the provider fixtures folder."""
    fx = Path(fixtures)
    plans = json.loads((fx / "vultr" / "plans.json").read_text(encoding="utf-8"))
    metal = json.loads((fx / "vultr" / "plans_metal.json").read_text(encoding="utf-8"))
    return {
        "gcp.json": {
            "provider": "gcp",
            "about": "GCP A100 80GB / H100 80GB machine types, on-demand $/h = host VM + accelerators "
            "(SkyPilot's pricing); see zelda_tui/core/catalog.py",
            "sources": {"skypilot-gcp": GCP_SOURCE},
            "entries": _gcp_entries(fx / "gcp" / "skypilot_vms_slice.csv"),
        },
        "vultr.json": {
            "provider": "vultr",
            "about": "Vultr Cloud GPU (vcg) and GPU bare-metal plans, on-demand hourly_cost; "
            "see zelda_tui/core/catalog.py",
            "sources": VULTR_SOURCES,
            "entries": _vultr_entries(plans, metal),
        },
    }


def _dump(doc: dict[str, Any]) -> str:
    """Pretty header, one compact line per entry (small, and diffs show one changed entry per line)."""
    head = {k: v for k, v in doc.items() if k != "entries"}
    lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in doc["entries"]]
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    return text + ',\n "entries": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def write_catalog_data(fixtures: Path | str, out_dir: Path | str | None = None) -> list[Path]:
    """Regenerate `catalog_data/*.json` from the fixtures (a developer step; the files are committed)."""
    out = Path(out_dir) if out_dir else DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in build_catalog_data(fixtures).items():
        path = out / name
        path.write_text(_dump(doc), encoding="utf-8")
        written.append(path)
    return written
