"""Vultr API v2 client: Cloud GPU plans as offers, and create/get/delete an instance.

A Vultr "offer" is a (plan, region) pair: the plan fixes the hardware and price, the region
must currently have stock (`/regions/{id}/availability`). Lists are cursor-paged
(`meta.links.next`, `""` at the end) — see `shared/fixtures/providers/NOTES.md`.
"""

from __future__ import annotations

import base64
from typing import Any

from ...core.errors import ZeldaError
from ...core.offers import Offer
from .http import ApiError, InstanceInfo, ProviderClient, convert_each, get_field, one_line, require

BASE_URL = "https://api.vultr.com/v2"
KEY_ENV = "VULTR_API_KEY"
PLAN_TYPE = "vcg"  # Cloud GPU
PER_PAGE = 100
MAX_PAGES = 100  # a server that keeps handing out cursors must not loop us forever
HOURS_PER_MONTH = 730  # only when a plan lacks hourly_cost
UBUNTU_2204_OS_ID = 1743  # Vultr's "Ubuntu 22.04 LTS x64"
OFFER_SEP = "@"  # offer id = "<plan>@<region>"


def split_offer_id(offer_id: str) -> tuple[str, str]:
    """`vcg-a100-...@ewr` -> (plan, region); launch needs both."""
    plan, sep, region = offer_id.partition(OFFER_SEP)
    if not sep or not plan or not region:
        raise ZeldaError(f"vultr: offer id {offer_id!r} must look like <plan>{OFFER_SEP}<region>", exit_code=2)
    return plan, region


def is_gpu_plan(plan: dict[str, Any]) -> bool:
    return plan.get("type") == PLAN_TYPE or bool(plan.get("gpu_type")) or str(plan.get("id", "")).startswith("vcg-")


def _gpu_count(plan: dict[str, Any]) -> int:
    """`gpu_count` is "2" for whole GPUs and "1/4" for a vGPU slice (seen in newer payloads); default 1."""
    try:
        return max(1, int(str(plan.get("gpu_count", "1")).strip()))
    except ValueError:
        return 1  # a fraction: one (partial) GPU


def offer_from_vultr(plan: dict[str, Any], region: str, available: bool = True) -> Offer:
    """One offer per (plan, region): `ram` MB -> GB, `gpu_vram_gb` is for the whole plan.

    A field of the wrong type is a `BadField` naming it (the listing skips that plan with a warning)."""
    num_gpus = _gpu_count(plan)
    hourly = get_field(plan, "hourly_cost", float)
    if hourly is None:
        hourly = get_field(plan, "monthly_cost", float, 0.0) / HOURS_PER_MONTH
    return Offer(
        provider="vultr",
        id=f"{get_field(plan, 'id', str, required=True)}{OFFER_SEP}{region}",
        gpu_name=get_field(plan, "gpu_type", str, "").replace("_", " "),
        num_gpus=num_gpus,
        gpu_ram=get_field(plan, "gpu_vram_gb", float, 0.0) / num_gpus,
        cpu_cores=get_field(plan, "vcpu_count", float) or get_field(plan, "cpu_threads", float, 0.0),
        cpu_ram=get_field(plan, "ram", float, 0.0) / 1024,
        disk_space=get_field(plan, "disk", float, 0.0) * (get_field(plan, "disk_count", int) or 1),
        dph_total=hourly,
        region=region,
        available=available,
        price_date="live",
        price_source="vultr API (GET /plans hourly_cost)",
        raw=plan,
    )


def instance_from_vultr(raw: dict[str, Any]) -> InstanceInfo:
    """Ready = active + server_status ok + running; `default_password` is dropped (a secret)."""
    status = str(raw.get("status") or "pending")
    ready = status == "active" and raw.get("server_status") == "ok" and raw.get("power_status", "running") == "running"
    ip = raw.get("main_ip") or None
    if ip == "0.0.0.0":
        ip = None
    clean = {k: v for k, v in raw.items() if k != "default_password"}
    return InstanceInfo(
        provider="vultr",
        id=str(raw.get("id")),
        status=status,
        ready=ready,
        ssh_host=ip if ready else None,
        ssh_port=22 if ready and ip else None,
        public_ip=ip,
        label=str(raw.get("label") or ""),
        raw=clean,
    )


class VultrClient(ProviderClient):
    """Vultr API v2 with a bearer key; all calls go through `ApiClient`."""

    NAME = "vultr"
    BASE_URL = BASE_URL
    KEY_ENV = KEY_ENV
    KEY_HELP = "https://my.vultr.com/settings/#settingsapi"

    def _paged(self, path: str, key: str, step: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """All items of a cursor-paged list (`meta.links.next` until empty or seen before)."""
        items: list[dict[str, Any]] = []
        cursor = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page_params = {**params, "per_page": PER_PAGE, **({"cursor": cursor} if cursor else {})}
            data = self.api.request("GET", path, step=step, params=page_params)
            items.extend(i for i in require(data, key, list, self.api, step) if isinstance(i, dict))
            links = ((data.get("meta") or {}).get("links") or {}) if isinstance(data.get("meta"), dict) else {}
            cursor = str(links.get("next") or "")
            if not cursor:
                return items
            if cursor in seen:
                raise ApiError(f"vultr: {step}: the server repeated page cursor {cursor!r}; stopping")
            seen.add(cursor)
        raise ApiError(f"vultr: {step}: more than {MAX_PAGES} pages; stopping")

    def plans(self) -> list[dict[str, Any]]:
        """Every Cloud GPU plan, all pages."""
        plans = self._paged("/plans", "plans", "list plans", {"type": PLAN_TYPE})
        return [p for p in plans if is_gpu_plan(p)]

    def region_availability(self, region: str) -> set[str]:
        """Plan ids with stock in `region` right now."""
        step = f"availability in {region}"
        data = self.api.request("GET", f"/regions/{region}/availability", step=step, params={"type": PLAN_TYPE})
        return {str(p) for p in require(data, "available_plans", list, self.api, step)}

    def gpu_plans(self, only_available: bool = True) -> list[Offer]:
        """One offer per (GPU plan, region with stock); `only_available=False` keeps sold-out ones flagged."""
        plans = self.plans()
        regions = sorted({str(r) for p in plans for r in p.get("locations") or []})
        stock = {region: self.region_availability(region) for region in regions}
        def offers_of(plan: dict[str, Any]) -> list[Offer]:
            plan_id = get_field(plan, "id", str, required=True)
            return [offer_from_vultr(plan, str(region), plan_id in stock.get(str(region), set()))
                    for region in plan.get("locations") or []]

        per_plan, self.skipped = convert_each(plans, offers_of, lambda p: f"vultr: plan {one_line(str(p.get('id', '?')), 40)}")
        return [o for offers in per_plan for o in offers if o.available or not only_available]

    @staticmethod
    def create_body(plan: str, region: str, ssh_key_id: str, label: str, os_id: int = UBUNTU_2204_OS_ID,
                    user_data: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "region": region, "plan": plan, "os_id": os_id, "label": label, "hostname": label or plan,
            "sshkey_id": [ssh_key_id] if ssh_key_id else [], "tags": ["zelda-tui"],
        }
        if user_data:
            body["user_data"] = base64.b64encode(user_data.encode()).decode()
        return body

    def describe_create_instance(self, plan: str, region: str, ssh_key_id: str, label: str = "") -> str:
        """What `create_instance` would send, key redacted (for `--dry-run`)."""
        return self.api.describe_request("POST", "/instances", self.create_body(plan, region, ssh_key_id, label))

    def create_instance(self, plan: str, region: str, ssh_key_id: str, label: str = "",
                        os_id: int = UBUNTU_2204_OS_ID, user_data: str | None = None) -> InstanceInfo:
        """`POST /instances` (HTTP 202); the answer's root password is not kept — we use SSH keys."""
        step = f"create instance {plan} in {region}"
        data = self.api.request("POST", "/instances", step=step,
                                json_body=self.create_body(plan, region, ssh_key_id, label, os_id, user_data))
        return instance_from_vultr(require(data, "instance", dict, self.api, step))

    def get_instance(self, instance_id: str) -> InstanceInfo:
        step = f"get instance {instance_id}"
        data = self.api.request("GET", f"/instances/{instance_id}", step=step)
        return instance_from_vultr(require(data, "instance", dict, self.api, step))

    def delete_instance(self, instance_id: str) -> None:
        """`DELETE /instances/{id}` answers 204 with no body."""
        self.api.request("DELETE", f"/instances/{instance_id}", step=f"delete instance {instance_id}")
