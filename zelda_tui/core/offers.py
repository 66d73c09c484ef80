"""One normalised GPU offer for every provider (Vast.ai, Vultr, GCP, the offline catalog).

Providers' own fields stay in `raw` (shown in the detail pane); the query language and the
table use the normalised attributes, named after `vastai search offers` fields where one exists
so the same query works for every provider, with the meaning `vastai search offers` gives them:
`cpu_cores` is the host's vCPUs (Vast's `cpu_cores`, not `cpu_cores_effective`), `geolocation` the
two-letter country code (Vast's `"Georgia, US"` -> `US`; a GCP zone or Vultr region id through
`country_code`), `verified` / `external` booleans (Vast sends `verification: "verified"` and
`external: null`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Offer:
    provider: str  # "vast" | "vultr" | "gcp"
    id: str  # what launch needs: vast ask id, vultr plan id (+ region), gcp machine type (+ zone)
    gpu_name: str  # provider spelling, e.g. "A100 SXM4", "NVIDIA A100 80GB", "a2-ultragpu-1g"
    num_gpus: int
    gpu_ram: float  # GB per GPU (vastai's unit for gpu_ram in queries)
    cpu_cores: float  # vCPUs of the host (Vast: `cpu_cores`; GCP/Vultr: the machine's vCPUs)
    cpu_ram: float  # GB
    disk_space: float  # GB
    dph_total: float  # $/h for the whole box
    region: str  # region or zone
    reliability: float | None = None  # 0..1 where the provider says
    inet_down: float | None = None  # Mbit/s
    inet_up: float | None = None
    available: bool = True
    price_date: str = ""  # "live" for API answers, the catalog's date otherwise
    price_source: str = ""  # where the price comes from (API, catalog file)
    raw: dict[str, Any] = field(default_factory=dict)
    geolocation: str | None = None  # ISO country code; derived from provider + region when not given
    verified: bool | None = None  # Vast: verification == "verified"; None where the provider has no such notion
    external: bool | None = None  # Vast: listed from an external marketplace (null = false)

    def __post_init__(self) -> None:
        if self.geolocation is None:
            self.geolocation = country_code(self.provider, self.region)

    @property
    def key(self) -> str:
        """`provider:id`, what `zelda-tui offers launch` takes."""
        return f"{self.provider}:{self.id}"

    @property
    def gpu_total_ram(self) -> float:
        return self.gpu_ram * self.num_gpus

    @property
    def dph_per_gpu(self) -> float:
        return self.dph_total / self.num_gpus if self.num_gpus else self.dph_total

    def field(self, name: str) -> Any:
        """A queryable value by (vastai) field name; None when this offer does not have it."""
        if name in QUERY_FIELDS:
            return getattr(self, name)
        return self.raw.get(name)


# Normalised fields every provider fills (or leaves None); anything else is looked up in raw.
QUERY_FIELDS = (
    "provider", "id", "gpu_name", "num_gpus", "gpu_ram", "gpu_total_ram", "cpu_cores", "cpu_ram", "disk_space",
    "dph_total", "dph_per_gpu", "region", "geolocation", "reliability", "inet_down", "inet_up", "available",
    "verified", "external",
)

# Google's published region locations (cloud.google.com/about/locations): region -> country.
GCP_REGION_COUNTRY = {
    "africa-south1": "ZA", "asia-east1": "TW", "asia-east2": "HK", "asia-northeast1": "JP", "asia-northeast2": "JP",
    "asia-northeast3": "KR", "asia-south1": "IN", "asia-south2": "IN", "asia-southeast1": "SG",
    "asia-southeast2": "ID", "australia-southeast1": "AU", "australia-southeast2": "AU", "europe-central2": "PL",
    "europe-north1": "FI", "europe-north2": "SE", "europe-southwest1": "ES", "europe-west1": "BE",
    "europe-west2": "GB", "europe-west3": "DE", "europe-west4": "NL", "europe-west6": "CH", "europe-west8": "IT",
    "europe-west9": "FR", "europe-west10": "DE", "europe-west12": "IT", "me-central1": "QA", "me-central2": "SA",
    "me-west1": "IL", "northamerica-northeast1": "CA", "northamerica-northeast2": "CA",
    "northamerica-south1": "MX", "southamerica-east1": "BR", "southamerica-west1": "CL",
}
# Vultr region ids -> country (`GET /regions` gives `country` per id, e.g. ams -> NL).
VULTR_REGION_COUNTRY = {
    "ams": "NL", "atl": "US", "blr": "IN", "bom": "IN", "cdg": "FR", "del": "IN", "dfw": "US", "ewr": "US",
    "fra": "DE", "hnl": "US", "icn": "KR", "itm": "JP", "jnb": "ZA", "lax": "US", "lhr": "GB", "mad": "ES",
    "man": "GB", "mel": "AU", "mex": "MX", "mia": "US", "nrt": "JP", "ord": "US", "sao": "BR", "scl": "CL",
    "sea": "US", "sgp": "SG", "sjc": "US", "sto": "SE", "syd": "AU", "tlv": "IL", "waw": "PL", "yto": "CA",
}


def country_code(provider: str, region: str) -> str | None:
    """The two-letter country of an offer's `region`, as `vastai`'s `geolocation` filter compares it:
    Vast `"Georgia, US"` -> `US` (after the last comma), GCP `us-central1-a` -> `US` (every `us-*`
    region) or by `GCP_REGION_COUNTRY`, Vultr `ewr` -> `US`; None when unknown."""
    if not region:
        return None
    if provider == "vast":
        code = region.rsplit(",", 1)[-1].strip().upper()
        return code if len(code) == 2 and code.isalpha() else None
    if provider == "gcp":
        name = region if region.count("-") == 1 else region.rsplit("-", 1)[0]  # zone -> region
        return "US" if name.startswith("us-") else GCP_REGION_COUNTRY.get(name)
    if provider == "vultr":
        return VULTR_REGION_COUNTRY.get(region.lower())
    return None


def held_hours(instance: dict, now: float) -> float:
    """How long a tracked instance has been rented: from `started` to `ended`, or to now if still held."""
    return ((instance["ended"] or now) - instance["started"]) / 3600


def spent_usd(instance: dict, now: float) -> float:
    """What a tracked instance has cost: its $/h over the time held (unrounded)."""
    return instance["dph_total"] * held_hours(instance, now)
