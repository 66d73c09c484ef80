"""Vast.ai REST client: search offers, rent one, watch it boot, destroy it.

Shapes and units follow `shared/fixtures/providers/NOTES.md` (vast-cli @ 55679830): offers come
from `POST /bundles/` with MB memory fields; renting is `PUT /asks/{ask id}/`, which returns a
*different* number (the instance id).
"""

from __future__ import annotations

from typing import Any

from ...core.offer_query import VAST_API_FIELDS, Condition, Query
from ...core.offers import Offer
from .http import ApiError, InstanceInfo, ProviderClient, convert_each, get_field, one_line, require

BASE_URL = "https://console.vast.ai/api/v0"
KEY_ENV = "VAST_API_KEY"
# The vastai CLI turns a query's GB into the API's MB with x1000 (`gpu_ram>=24` keeps an RTX 4090 at
# 24564 MB): dividing by 1000 keeps our queries answering exactly as `vastai search offers` does.
MB_PER_GB = 1000

# What `vastai search offers` starts from unless -n (vastai 1.9.1 `vastai/cli/commands/offers.py`); a query
# overrides them (`verified=false`, `rentable=any`).
DEFAULT_FILTERS: dict[str, Any] = {
    "verified": {"eq": True},
    "external": {"eq": False},
    "rentable": {"eq": True},
}
# vastai's `offers_mult`: query units -> API units (GB -> MB as x1000, days -> seconds).
API_MULTIPLIERS = {"cpu_ram": MB_PER_GB, "gpu_ram": MB_PER_GB, "gpu_total_ram": MB_PER_GB, "duration": 86400.0}


def query_filters(query: Query | None) -> dict[str, Any]:
    """The API filters `vastai search offers QUERY` sends: `DEFAULT_FILTERS`, less the fields a wildcard
    cleared, with each condition on a Vast API field as `{field: {op: value}}` in vastai's spelling
    (numbers as typed text, GB x1000, days x86400, `a.b.c` versions as vastai's `numeric_version`).

    Left out (filtered locally instead): fields the Vast API does not have (`provider`, `region`, ...)
    and an unquoted `gpu_name`, whose whole-word match (`A100` = "A100 SXM4", "A100 PCIE") the API's
    exact text comparison cannot do."""
    filters = {k: dict(v) for k, v in DEFAULT_FILTERS.items() if query is None or k not in query.cleared}
    for c in query or ():
        if c.field not in VAST_API_FIELDS or (c.field == "gpu_name" and not c.quoted):
            continue
        value = _api_value(c)
        if value is not _SKIP:
            filters.setdefault(c.field, {})[c.op] = value
    return filters


_SKIP = object()


def _api_value(c: Condition) -> Any:
    """One condition's value as vastai's `parse_query` sends it, or `_SKIP` when it has no API form."""
    mult = API_MULTIPLIERS.get(c.field)
    if c.op in ("in", "notin"):
        if mult is not None:
            return _SKIP  # vastai cannot send a list for these (float(list)): filtered here only
        return [str(v) for v in c.value] if c.quoted else _list_texts(c.text)  # vastai sends list items as text
    if isinstance(c.value, bool) or c.value is None:
        return c.value
    if isinstance(c.value, tuple):  # a version: vastai's numeric_version("535.86.05") = 535086005
        if c.field == "driver_version" and len(c.value) == 3:
            return int("".join(f"{p:03d}" for p in c.value))
        return _SKIP if mult is not None else c.text
    if mult is not None:
        return float(c.text) * mult
    return c.text  # vastai sends numbers as the text typed: `num_gpus>=4` -> "4"


def _list_texts(inner: str) -> list[str]:
    """vastai's list items: split at commas, stripped, `_` -> space, quotes dropped."""
    return [x.strip().replace("_", " ").strip('"') for x in inner.split(",") if x.strip()]


def offer_from_vast(raw: dict[str, Any]) -> Offer:
    """Normalise one `/bundles/` offer (MB -> GB, geolocation -> region); `raw` keeps everything.

    Fields mean what vastai's filters compare: `cpu_cores` the host's vCPUs (not `cpu_cores_effective`),
    `verified` = `verification == "verified"` (or a bool `verified` where the payload has one),
    `external` null = false, `geolocation` the country code after the last comma of `"Georgia, US"`.
    A field of the wrong type is a `BadField` naming it (the listing skips that offer with a warning)."""
    verified = raw.get("verified")
    if not isinstance(verified, bool):
        verified = get_field(raw, "verification", str) == "verified"
    reliability = get_field(raw, "reliability2", float)
    if reliability is None:
        reliability = get_field(raw, "reliability", float)
    offer_id = get_field(raw, "id", int) or get_field(raw, "ask_contract_id", int, required=True)
    return Offer(
        provider="vast",
        id=str(offer_id),
        gpu_name=get_field(raw, "gpu_name", str, ""),
        num_gpus=get_field(raw, "num_gpus", int, 0),
        gpu_ram=get_field(raw, "gpu_ram", float, 0.0) / MB_PER_GB,
        cpu_cores=get_field(raw, "cpu_cores", float, 0.0),
        cpu_ram=get_field(raw, "cpu_ram", float, 0.0) / MB_PER_GB,
        disk_space=get_field(raw, "disk_space", float, 0.0),
        dph_total=get_field(raw, "dph_total", float, required=True),
        region=get_field(raw, "geolocation", str, ""),
        reliability=reliability,
        inet_down=get_field(raw, "inet_down", float),
        inet_up=get_field(raw, "inet_up", float),
        available=bool(raw.get("rentable", True)) and not raw.get("rented", False),
        price_date="live",
        price_source="vast.ai API (POST /bundles/ dph_total)",
        raw=raw,
        verified=verified,
        external=bool(raw.get("external")),
    )


def ssh_endpoint(raw: dict[str, Any]) -> tuple[str | None, int | None]:
    """Where SSH listens, like vast-cli `ssh-url`: the direct `22/tcp` mapping, else the proxy.

    `ports` is Docker-style `{"22/tcp": [{"HostPort": "30022"}]}` in practice and a bare list
    (`[8080, 8081]`) in the docs' example; the list says nothing about 22, so it falls back to
    `ssh_host`/`ssh_port` (vast's SSH proxy).
    """
    ports = raw.get("ports")
    if isinstance(ports, dict):
        mappings = ports.get("22/tcp") or []
        if mappings and isinstance(mappings, list) and isinstance(mappings[0], dict) and raw.get("public_ipaddr"):
            try:
                return str(raw["public_ipaddr"]).strip(), int(mappings[0]["HostPort"])
            except (KeyError, TypeError, ValueError):
                pass
    host, port = raw.get("ssh_host"), raw.get("ssh_port")
    try:
        return (str(host), int(port)) if host and port else (None, None)
    except (TypeError, ValueError):
        return None, None


def instance_from_vast(raw: dict[str, Any]) -> InstanceInfo:
    """`actual_status` goes null -> loading -> running; SSH is only offered once running."""
    status = raw.get("actual_status") or "pending"
    ready = status == "running"
    host, port = ssh_endpoint(raw) if ready else (None, None)
    clean = {k: v for k, v in raw.items() if k not in {"jupyter_token", "instance_api_key"}}
    return InstanceInfo(
        provider="vast",
        id=str(raw.get("id")),
        status=str(status),
        ready=ready,
        ssh_host=host,
        ssh_port=port,
        public_ip=(str(raw["public_ipaddr"]).strip() if raw.get("public_ipaddr") else None),
        label=str(raw.get("label") or ""),
        raw=clean,
    )


class VastClient(ProviderClient):
    """Vast.ai API v0 with a bearer key (vast-cli's auth); all calls go through `ApiClient`."""

    NAME = "vast"
    BASE_URL = BASE_URL
    KEY_ENV = KEY_ENV
    KEY_HELP = "https://cloud.vast.ai/manage-keys/"

    # -- offers -------------------------------------------------------------------------------

    @staticmethod
    def search_body(filters: dict[str, Any], defaults: bool = True) -> dict[str, Any]:
        """Raw API filters (`{"gpu_ram": {"gte": 24000}}`) over vast-cli's defaults, on-demand prices."""
        return {**(DEFAULT_FILTERS if defaults else {}), **filters, "type": "on-demand"}

    def search_offers(self, filters: dict[str, Any], defaults: bool = True) -> list[Offer]:
        """`POST /bundles/`; read-only, so 5xx is retried too. A query's filters: `query_filters(q)`,
        `defaults=False` (they include the defaults the query left)."""
        data = self.api.request(
            "POST", "/bundles/", step="search offers", json_body=self.search_body(filters, defaults),
            retry_server_errors=True,
        )
        offers, skipped = convert_each(require(data, "offers", list, self.api, "search offers"), offer_from_vast,
                                       lambda o: f"vast: offer {one_line(str(o.get('id', o.get('ask_contract_id', '?'))), 30)}")
        self.skipped = skipped
        return offers

    # -- instances ----------------------------------------------------------------------------

    @staticmethod
    def create_body(image: str, disk_gb: float, onstart: str, label: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """The rent request: direct SSH (no proxy hop), disk in GB."""
        return {
            "client_id": "me",
            "image": image,
            "disk": disk_gb,
            "runtype": "ssh_direct",
            "env": env or {},
            "onstart": onstart,
            "label": label,
        }

    def describe_create_instance(self, offer_id: str | int, image: str, disk_gb: float, onstart: str = "", label: str = "") -> str:
        """What `create_instance` would send, key redacted (for `--dry-run`)."""
        return self.api.describe_request("PUT", f"/asks/{offer_id}/", self.create_body(image, disk_gb, onstart, label))

    def create_instance(
        self, offer_id: str | int, image: str, disk_gb: float, onstart: str = "", label: str = "",
        env: dict[str, str] | None = None,
    ) -> str:
        """Rent offer `offer_id`; returns the new *instance* id (`new_contract`).

        404/410 mean someone else took the offer (or it expired): the caller should search again.
        """
        step = f"rent offer {offer_id}"
        try:
            data = self.api.request("PUT", f"/asks/{offer_id}/", step=step,
                                    json_body=self.create_body(image, disk_gb, onstart, label, env))
        except ApiError as exc:
            if exc.status in (404, 410):
                raise ApiError(f"vast: {step}: offer gone ({exc.status}) — it was rented by someone else or expired; search again", exc.status) from None
            raise
        if isinstance(data, dict) and data.get("success") is False:
            detail = data.get("msg") or data.get("error") or "refused"
            raise ApiError(self.api.redact(f"vast: {step}: refused ({' '.join(str(detail).split())})"))
        contract = require(data, "new_contract", int, self.api, step)
        return str(contract)

    def show_instance(self, instance_id: str | int) -> InstanceInfo:
        """`GET /instances/{id}/?owner=me`; `instances` is one object (a list in older answers)."""
        step = f"show instance {instance_id}"
        data = self.api.request("GET", f"/instances/{instance_id}/", step=step, params={"owner": "me"})
        found = data.get("instances") if isinstance(data, dict) else None
        if isinstance(found, list):
            found = next((i for i in found if isinstance(i, dict) and str(i.get("id")) == str(instance_id)), None)
        if not isinstance(found, dict) or not found:
            raise ApiError(f"vast: {step}: no such instance (destroyed, or not yours)", 404)
        return instance_from_vast(found)

    def destroy_instance(self, instance_id: str | int) -> None:
        """`DELETE /instances/{id}/`; stops billing. A `success: false` answer is an error."""
        step = f"destroy instance {instance_id}"
        data = self.api.request("DELETE", f"/instances/{instance_id}/", step=step)
        if isinstance(data, dict) and data.get("success") is False:
            detail = data.get("msg") or data.get("error") or "refused"
            raise ApiError(self.api.redact(f"vast: {step}: refused ({' '.join(str(detail).split())})"))
