"""GCP Compute Engine GPU offers: live from the Compute REST API when credentials exist,
otherwise from the offline price catalog.

GCP has no price in the Compute API (prices come from the Cloud Billing catalog or a dated
file), so `offers_from_machine_types` takes the prices as an argument; the live client and the
offline catalog both feed it. Without `GOOGLE_APPLICATION_CREDENTIALS`, `available()` is False
and `offers()` returns whatever the injected `catalog` callable gives (normally
`zelda_tui.core.catalog.load_catalog`, wired by the services layer).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...core.errors import ZeldaError
from ...core.offers import Offer
from .http import ApiClient, RetryPolicy

BASE_URL = "https://compute.googleapis.com/compute/v1"
CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
MAX_PAGES = 50

# GB per card by GCP accelerator type name (public GPU specs; the API does not say).
GPU_RAM_GB: dict[str, float] = {
    "nvidia-h200-141gb": 141, "nvidia-h100-mega-80gb": 80, "nvidia-h100-80gb": 80,
    "nvidia-a100-80gb": 80, "nvidia-tesla-a100": 40, "nvidia-l4": 24, "nvidia-tesla-t4": 16,
    "nvidia-tesla-v100": 16, "nvidia-tesla-p100": 16, "nvidia-tesla-p4": 8, "nvidia-tesla-k80": 12,
}
GONE_STATES = {"DEPRECATED", "OBSOLETE", "DELETED"}

Prices = Mapping[tuple[str, str], float]  # (machine type, zone) -> $/h for VM + its GPUs


def _zone(key: str, value: Any) -> str:
    """`zones/us-central1-a` or a zone URL -> `us-central1-a`."""
    return str(value or key).rstrip("/").rsplit("/", 1)[-1]


def accelerator_zones(aggregated: dict[str, Any]) -> dict[str, set[str]]:
    """zone -> accelerator type names, from `acceleratorTypes.aggregatedList` (zones with a
    `warning` instead of `acceleratorTypes` have none)."""
    zones: dict[str, set[str]] = {}
    for key, scoped in (aggregated.get("items") or {}).items():
        for acc in (scoped or {}).get("acceleratorTypes") or []:
            zones.setdefault(_zone(key, acc.get("zone")), set()).add(str(acc.get("name")))
    return zones


def offers_from_machine_types(
    aggregated: dict[str, Any],
    prices: Prices,
    available_accelerators: Mapping[str, set[str]] | None = None,
    price_date: str = "live",
    price_source: str = "",
) -> list[Offer]:
    """GPU offers from a `machineTypes.aggregatedList` answer.

    Only machine types with bundled `accelerators` (a2/a3/g2...) become offers; deprecated ones
    and those without a price for their zone are skipped (an offer must be rankable by $/h).
    `available_accelerators` (zone -> names) marks an offer unavailable when its GPU is not
    offered in that zone; None means "not checked". `disk_space` is the largest persistent
    disk one can attach (GCP sells disk separately).
    """
    offers: list[Offer] = []
    for key, scoped in (aggregated.get("items") or {}).items():
        for mt in (scoped or {}).get("machineTypes") or []:
            accelerators = mt.get("accelerators") or []
            if not accelerators or (mt.get("deprecated") or {}).get("state") in GONE_STATES:
                continue
            zone = _zone(key, mt.get("zone"))
            price = prices.get((str(mt.get("name")), zone))
            if price is None:
                continue
            acc = accelerators[0]
            gpu = str(acc.get("guestAcceleratorType") or "")
            count = int(acc.get("guestAcceleratorCount") or 0)
            available = True
            if available_accelerators is not None:
                available = gpu in available_accelerators.get(zone, set())
            offers.append(Offer(
                provider="gcp",
                id=f"{mt.get('name')}@{zone}",
                gpu_name=gpu,
                num_gpus=count,
                gpu_ram=float(GPU_RAM_GB.get(gpu, 0.0)),
                cpu_cores=float(mt.get("guestCpus") or 0),
                cpu_ram=float(mt.get("memoryMb") or 0) / 1024,
                disk_space=float(mt.get("maximumPersistentDisksSizeGb") or 0),
                dph_total=float(price),
                region=zone,
                available=available,
                price_date=price_date,
                price_source=price_source or "prices passed in",
                raw=mt,
            ))
    return offers


class GcpClient:
    """Live GCP offers when credentials and an access token exist; the offline catalog otherwise.

    Getting an OAuth token from a service-account file needs a JWT signer we do not ship, so the
    token is passed in (e.g. `gcloud auth print-access-token`); `catalog` is the offline fallback.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        access_token: str | None = None,
        catalog: Callable[[], list[Offer]] | None = None,
        base_url: str = BASE_URL,
        retry: RetryPolicy | None = None,
        read_timeout: float = 30.0,
    ) -> None:
        self.project = project
        self.catalog = catalog
        self.api = ApiClient("gcp", base_url, token=access_token, key_env=CREDENTIALS_ENV,
                             retry=retry, read_timeout=read_timeout)
        self._has_token = bool(access_token)

    def __repr__(self) -> str:
        return f"GcpClient(project={self.project!r}, api={self.api!r})"

    def close(self) -> None:
        self.api.close()

    def available(self) -> bool:
        """True when live calls can work: credentials file set and present, a token and a project."""
        path = os.environ.get(CREDENTIALS_ENV, "").strip()
        return bool(path) and Path(path).is_file() and self._has_token and bool(self.project)

    def _aggregated(self, kind: str, step: str) -> dict[str, Any]:
        """All pages of `aggregated/{kind}` merged into one `items` dict."""
        items: dict[str, Any] = {}
        token = ""
        for _ in range(MAX_PAGES):
            params = {"maxResults": 500, **({"pageToken": token} if token else {})}
            data = self.api.request("GET", f"projects/{self.project}/aggregated/{kind}", step=step, params=params)
            if not isinstance(data, dict):
                raise self.api._error(step, "unexpected answer: not a JSON object")
            for zone, scoped in (data.get("items") or {}).items():
                merged = items.setdefault(zone, {})
                for name, value in (scoped or {}).items():
                    if isinstance(value, list):
                        merged.setdefault(name, []).extend(value)
            token = str(data.get("nextPageToken") or "")
            if not token:
                break
        return {"items": items}

    def live_offers(self, prices: Prices, price_date: str, price_source: str) -> list[Offer]:
        """Machine types + accelerator stock from the API, priced by the caller."""
        machine_types = self._aggregated("machineTypes", "list machine types")
        zones = accelerator_zones(self._aggregated("acceleratorTypes", "list accelerator types"))
        return offers_from_machine_types(machine_types, prices, zones, price_date, price_source)

    def offers(self) -> list[Offer]:
        """The offline catalog's GCP offers (the live path needs prices; see `live_offers`)."""
        if self.catalog is None:
            raise ZeldaError(f"gcp: list offers: no offline catalog and {CREDENTIALS_ENV} is not set — nothing to show")
        return [o for o in self.catalog() if o.provider == "gcp"]
