"""One normalised GPU offer for every provider (Vast.ai, Vultr, GCP, the offline catalog).

Providers' own fields stay in `raw` (shown in the detail pane); the query language and the
table use the normalised attributes, named after `vastai search offers` fields where one exists
so the same query works for every provider.
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
    cpu_cores: float  # vCPUs
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
    "dph_total", "dph_per_gpu", "region", "reliability", "inet_down", "inet_up", "available",
)


def held_hours(instance: dict, now: float) -> float:
    """How long a tracked instance has been rented: from `started` to `ended`, or to now if still held."""
    return ((instance["ended"] or now) - instance["started"]) / 3600


def spent_usd(instance: dict, now: float) -> float:
    """What a tracked instance has cost: its $/h over the time held (unrounded)."""
    return instance["dph_total"] * held_hours(instance, now)
