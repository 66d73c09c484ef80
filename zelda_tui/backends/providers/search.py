"""Offers from every provider at once: live where a key is set, the dated offline catalog otherwise.

A provider that fails (no key, bad key, down) becomes a one-line warning and its catalog entries
(if any) are shown instead: the browser keeps working. GCP is live when application-default
credentials are configured (see `gcp.search_gcp`); without them it is the catalog, silently.

The query's conditions go to Vast's API as `vastai search offers` sends them (`vast.query_filters`:
vastai's defaults, overridden by the query), so `verified=false` or `rentable=any` can widen what Vast
returns; the caller still filters every provider's offers with the same query.
"""

from __future__ import annotations

from ...core.errors import ZeldaError
from ...core.offer_query import Query
from ...core.offers import Offer
from . import gcp, vast, vultr
from .http import RetryPolicy
from .vast import VastClient
from .vultr import VultrClient

PROVIDERS = ("vast", "vultr", "gcp")


def search_offers(providers: tuple[str, ...], catalog: list[Offer], urls: dict[str, str] | None = None,
                  gcp_project: str | None = None, gcp_retry: RetryPolicy | None = None,
                  query: Query | None = None) -> tuple[list[Offer], list[str]]:
    """(offers, warnings) of `providers`; `urls` overrides base URLs per provider (proxies, test
    servers), `gcp_project` is `[providers.gcp] project`, `gcp_retry` the retry policy of GCP's API calls,
    `query` the parsed filter (None: vastai's defaults only)."""
    urls = urls or {}
    unknown = set(providers) - set(PROVIDERS)
    if unknown:
        raise ZeldaError(f"unknown provider(s) {', '.join(sorted(unknown))}; use {', '.join(PROVIDERS)} or all", exit_code=2)
    offers: list[Offer] = []
    warnings: list[str] = []
    if "vast" in providers:
        try:
            client = VastClient.from_env(base_url=urls.get("vast", vast.BASE_URL))
            try:
                offers += client.search_offers(vast.query_filters(query), defaults=False)
                warnings += client.skipped
            finally:
                client.close()
        except ZeldaError as exc:
            warnings.append(f"{exc} (no Vast offers: Vast has no offline catalog)")
    if "vultr" in providers:
        try:
            client = VultrClient.from_env(base_url=urls.get("vultr", vultr.BASE_URL))
            try:
                offers += client.gpu_plans()
                warnings += client.skipped
            finally:
                client.close()
        except ZeldaError as exc:
            warnings.append(f"{exc} (showing the offline Vultr catalog)")
            offers += [o for o in catalog if o.provider == "vultr"]
    if "gcp" in providers:
        gcp_offers, gcp_warnings = gcp.search_gcp(catalog, project=gcp_project, base_url=urls.get("gcp"),
                                                  retry=gcp_retry)
        offers += gcp_offers
        warnings += gcp_warnings
    return offers, warnings
