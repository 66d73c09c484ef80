"""GCP Compute Engine GPU offers: live from the Compute REST API when application-default
credentials exist, otherwise from the offline price catalog.

GCP has no price in the Compute API (prices come from the Cloud Billing catalog or a dated
file), so the live path lists which A100 80GB / H100 80GB machine types exist in which zone
(`machineTypes.aggregatedList`) and whether the zone offers the GPU (`acceleratorTypes.
aggregatedList`), then prices each (machine type, zone) with the offline catalog's price for it
(or for another zone of the same region: GCP prices per region). Live pairs the catalog cannot
price are left out and counted in a note. `search_gcp` is the whole flow with the fallback:
any failure (no google-auth, bad credentials, token endpoint or API down, odd answers) becomes
one warning line and the catalog's offers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.errors import ZeldaError
from ...core.offers import Offer
from . import gcp_auth
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
            if not gpu_machine_type(mt):
                continue
            zone = _zone(key, mt.get("zone"))
            price = prices.get((str(mt.get("name")), zone))
            if price is None:
                continue
            offer = machine_type_offer(mt, zone, float(price), price_date, price_source or "prices passed in")
            if available_accelerators is not None:
                offer.available = offer.gpu_name in available_accelerators.get(zone, set())
            offers.append(offer)
    return offers


def gpu_machine_type(mt: dict[str, Any]) -> bool:
    """A machine type with bundled GPUs (a2/a3/g2...) that is not deprecated/obsolete/deleted."""
    return bool(mt.get("accelerators")) and (mt.get("deprecated") or {}).get("state") not in GONE_STATES


def machine_type_offer(mt: dict[str, Any], zone: str, price: float, price_date: str, price_source: str) -> Offer:
    """One `MachineType` object as an `Offer` in `zone` at `price` $/h (VM + its GPUs).

    `disk_space` is the largest persistent disk one can attach (GCP sells disk separately).
    """
    acc = mt["accelerators"][0]
    gpu = str(acc.get("guestAcceleratorType") or "")
    return Offer(
        provider="gcp",
        id=f"{mt.get('name')}@{zone}",
        gpu_name=gpu,
        num_gpus=int(acc.get("guestAcceleratorCount") or 0),
        gpu_ram=float(GPU_RAM_GB.get(gpu, 0.0)),
        cpu_cores=float(mt.get("guestCpus") or 0),
        cpu_ram=float(mt.get("memoryMb") or 0) / 1024,
        disk_space=float(mt.get("maximumPersistentDisksSizeGb") or 0),
        dph_total=price,
        region=zone,
        available=True,
        price_date=price_date,
        price_source=price_source,
        raw=mt,
    )


def region_of(zone: str) -> str:
    """`us-central1-a` -> `us-central1`."""
    return zone.rsplit("-", 1)[0]


def catalog_machine_type(offer: Offer) -> str:
    """The machine type of a catalog GCP offer (`raw.machine_type`, else the id before `@`)."""
    raw = offer.raw.get("machine_type") if isinstance(offer.raw, dict) else None
    return str(raw or offer.id.split("@", 1)[0])


@dataclass
class CatalogPrices:
    """The offline catalog's GCP prices, looked up by (machine type, zone).

    A zone the catalog does not list is priced from another zone of the same region when the
    catalog's zones of that region all agree (GCP sets Compute prices per region, not per zone);
    otherwise it has no price.
    """

    by_zone: dict[tuple[str, str], Offer] = field(default_factory=dict)

    @classmethod
    def from_catalog(cls, catalog: Iterable[Offer]) -> CatalogPrices:
        return cls({(catalog_machine_type(o), o.region): o for o in catalog if o.provider == "gcp"})

    @property
    def machine_types(self) -> set[str]:
        return {mt for mt, _ in self.by_zone}

    def lookup(self, machine_type: str, zone: str) -> tuple[Offer, str] | None:
        """(catalog offer whose price applies, how it applied) or None."""
        exact = self.by_zone.get((machine_type, zone))
        if exact is not None:
            return exact, ""
        region = [o for (mt, z), o in sorted(self.by_zone.items())
                  if mt == machine_type and region_of(z) == region_of(zone)]
        if region and len({o.dph_total for o in region}) == 1:
            return region[0], f"price of {region[0].region}, same region"
        return None


@dataclass
class LiveOffers:
    """What the live path found: priced offers, and the live pairs the catalog could not price."""

    offers: list[Offer]
    unpriced: list[str] = field(default_factory=list)  # "machine type@zone"

    def note(self) -> str | None:
        """One line about what was left out, or None."""
        if not self.unpriced:
            return None
        regions = sorted({region_of(key.split("@", 1)[1]) for key in self.unpriced})
        shown = ", ".join(regions[:6]) + (f" and {len(regions) - 6} more" if len(regions) > 6 else "")
        n = len(self.unpriced)
        return (f"gcp: {n} live machine type/zone pair{'s' if n != 1 else ''} in {shown} "
                f"{'have' if n != 1 else 'has'} no price in the offline catalog and {'are' if n != 1 else 'is'} not shown")


class GcpClient:
    """Compute API calls for one project with an access token; `catalog` is the offline fallback.

    The token comes from `gcp_auth` (application-default credentials, see `search_gcp`) or is passed
    in (e.g. `gcloud auth print-access-token`); it lives only inside the `ApiClient`, which keeps it
    out of reprs and error messages.
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
        credentials_hint: str = CREDENTIALS_ENV,
    ) -> None:
        self.project = project
        self.catalog = catalog
        self.api = ApiClient("gcp", base_url, token=access_token, key_env=credentials_hint,
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

    def _aggregated(self, kind: str, step: str, filter_expr: str = "") -> dict[str, Any]:
        """All pages of `aggregated/{kind}` merged into one `items` dict.

        An answer of the wrong shape, a page token the server repeats, or more than MAX_PAGES pages
        is an error: silently showing part of the list would look like "no stock in that zone".
        """
        items: dict[str, Any] = {}
        token = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"maxResults": 500}
            if filter_expr:
                params["filter"] = filter_expr
            if token:
                params["pageToken"] = token
            data = self.api.request("GET", f"projects/{self.project}/aggregated/{kind}", step=step, params=params)
            if not isinstance(data, dict) or not isinstance(data.get("items", {}), dict):
                raise self.api._error(step, "unexpected answer: not an aggregated list (no `items` object)")
            for zone, scoped in data.get("items", {}).items():
                if not isinstance(scoped, dict):
                    raise self.api._error(step, f"unexpected answer: items[{str(zone)[:40]!r}] is not an object")
                merged = items.setdefault(zone, {})
                for name, value in scoped.items():
                    if isinstance(value, list):
                        if not all(isinstance(v, dict) for v in value):
                            raise self.api._error(step, f"unexpected answer: {name} of {str(zone)[:40]} holds non-objects")
                        merged.setdefault(name, []).extend(value)
            token = str(data.get("nextPageToken") or "")
            if not token:
                return {"items": items}
            if token in seen:
                raise self.api._error(step, "the server repeated a page token — stopping instead of looping")
            seen.add(token)
        raise self.api._error(step, f"more than {MAX_PAGES} pages — narrow the listing")

    def live_offers(self, catalog: Iterable[Offer]) -> LiveOffers:
        """The catalog's machine types (a2-ultragpu-*, a3-highgpu-*) as the API lists them per zone,
        kept where the zone offers their GPU, priced from the catalog.

        The API is asked only for the machine types the catalog can price (a `filter` regex on
        `name`, which also keeps the aggregated listing to a page or two instead of every machine
        type of every zone); the names are checked again here in case a server ignores the filter.
        Prices, `price_date` and the start of `price_source` are the catalog entry's.
        """
        prices = CatalogPrices.from_catalog(catalog)
        names = sorted(n for n in prices.machine_types if _safe_name(n))
        if not names:
            return LiveOffers([])
        step = "list machine types"
        machine_types = self._aggregated("machineTypes", step, f'name eq "({"|".join(names)})"')
        found: list[tuple[dict[str, Any], str]] = []
        try:
            for key, scoped in machine_types["items"].items():
                for mt in scoped.get("machineTypes") or []:
                    if mt.get("name") in names and gpu_machine_type(mt):
                        found.append((mt, _zone(key, mt.get("zone"))))
            gpus = sorted({str(mt["accelerators"][0].get("guestAcceleratorType") or "") for mt, _ in found})
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            raise self.api._error(step, f"unexpected answer: a machine type is malformed ({type(exc).__name__})") from None
        if not found:
            return LiveOffers([])
        step = "list accelerator types"
        zones = accelerator_zones(self._aggregated(
            "acceleratorTypes", step, f'name eq "({"|".join(g for g in gpus if _safe_name(g))})"'))
        result = LiveOffers([])
        step = "list machine types"
        try:
            for mt, zone in found:
                offer = machine_type_offer(mt, zone, 0.0, "", "")
                if offer.gpu_name not in zones.get(zone, set()):
                    continue  # the zone lists the machine type but not its GPU: not rentable there
                priced = prices.lookup(str(mt["name"]), zone)
                if priced is None:
                    result.unpriced.append(offer.id)
                    continue
                source, how = priced
                offer.dph_total = source.dph_total
                offer.price_date = source.price_date
                offer.price_source = (f"{source.price_source}; {how + '; ' if how else ''}"
                                      "machine type and GPU in this zone live from the Compute API")
                result.offers.append(offer)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise self.api._error(step, f"unexpected answer: a machine type is malformed ({type(exc).__name__})") from None
        return result

    def offers(self) -> list[Offer]:
        """The offline catalog's GCP offers (the live path needs prices; see `live_offers`)."""
        if self.catalog is None:
            raise ZeldaError(f"gcp: list offers: no offline catalog and {CREDENTIALS_ENV} is not set — nothing to show")
        return [o for o in self.catalog() if o.provider == "gcp"]


def _safe_name(name: str) -> bool:
    """A machine/accelerator type name safe to put in a filter regex (GCP names: a-z, 0-9, -)."""
    return bool(name) and all(c.islower() or c.isdigit() or c == "-" for c in name)


def search_gcp(
    catalog: Iterable[Offer],
    *,
    project: Any = None,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Offer], list[str]]:
    """GCP offers for the browser: live (ADC + project) or the catalog's, plus warning lines.

    No ADC file at all -> the catalog, silently and without any network call (most users have no
    GCP account; that is not worth a warning). ADC configured -> live; any failure on the way is
    one warning naming gcp and the step, and the catalog instead. Never raises for provider trouble.
    """
    catalog_gcp = [o for o in catalog if o.provider == "gcp"]
    location = gcp_auth.find_adc_file(environ)
    if location is None:
        return catalog_gcp, []
    try:
        gcp_auth.require_google_auth()
        adc = gcp_auth.read_adc_file(location)
        project_id = gcp_auth.resolve_project(project, adc, environ)
        token = gcp_auth.TOKENS.token(adc)
        client = GcpClient(project_id, access_token=token, base_url=base_url or BASE_URL, retry=retry,
                           credentials_hint=adc.hint)
        try:
            live = client.live_offers(catalog_gcp)
        finally:
            client.close()
    except ZeldaError as exc:
        return catalog_gcp, [f"{exc} (showing the offline GCP catalog)"]
    note = live.note()
    return live.offers, [note] if note else []
