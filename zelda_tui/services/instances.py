"""Tracked GPU instances: lookup by SSH host, live state from the provider, destroy, spend."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.offers import held_hours, spent_usd
from ..core.store import Store
from .hosts import Hosts
from .views import InstanceRow, Spend


def provider_urls(config: Config) -> dict[str, str]:
    """[providers.vast] base_url etc. (vast, vultr, gcp): for proxies, and for the tests' local replay server."""
    return {n: p.base_url for n, p in config.providers.items() if p.base_url}


# A provider's word for an instance that exists but no longer runs (Vast `exited`/`offline`, GCP
# TERMINATED after a preemption, Vultr `stopped`/`suspended`): its runs are lost; it may still bill
# (its disk), so its spend keeps counting until it is destroyed or the provider no longer knows it.
NOT_RUNNING = frozenset({"exited", "offline", "stopped", "terminated", "preempted", "suspended", "gone", "destroyed"})


def gone(exc: ZeldaError) -> bool:
    """A provider answer that means the instance no longer exists (404 / 410)."""
    return getattr(exc, "status", None) in (404, 410)


@dataclass
class InstanceRegistry:
    """What we rented, as state.sqlite records it (an instance is recorded before it is rented)."""

    config: Config
    store: Store
    hosts: Hosts

    def for_host(self, host: str) -> InstanceRow | None:
        """The tracked, still-running instance whose SSH endpoint is this host (alias or user@host:port)."""
        try:
            spec = self.hosts.resolve(host)
        except ZeldaError:
            return None
        for inst in self.store.instance_rows():
            if inst["ended"] is None and inst["ssh_host"] == spec.hostname and (inst["ssh_port"] or 22) == spec.port:
                return InstanceRow.from_record(inst)
        return None

    def endpoints(self) -> list[str]:
        """`root@host:port` of every running tracked instance that has an SSH endpoint."""
        return [f"root@{inst['ssh_host']}:{inst['ssh_port'] or 22}" for inst in self.store.instance_rows()
                if inst["ended"] is None and inst["ssh_host"]]

    def spend(self) -> Spend:
        """[budget] limits and what tracked instances have cost so far ($/h x time held)."""
        b = self.config.budget
        now = time.time()
        spent = sum(spent_usd(r, now) for r in self.store.instance_rows())
        total = b.max_total_usd
        return Spend(max_total_usd=total, max_hourly_usd=b.max_hourly_usd, spent_usd=round(spent, 2),
                     left_usd=round(total - spent, 2) if total is not None else None,
                     max_runtime_hours=b.max_runtime_hours)

    def rows(self, refresh: bool = True) -> list[InstanceRow]:
        """Tracked instances with spend so far; live status/SSH endpoint from the provider when reachable.

        An instance the provider no longer knows (404/410) is gone: it is marked destroyed, so its
        spend stops counting, instead of showing "running" for ever.
        """
        now = time.time()
        out = []
        for row in self.store.instance_rows():
            extra = self._refresh(row, now) if refresh else {}
            out.append(InstanceRow.from_record(row, **extra, hours=round(held_hours(row, now), 3),
                                               spent_usd=round(spent_usd(row, now), 2)))
        return out

    def _refresh(self, row: dict, now: float) -> dict:
        """Ask the provider about one still-held instance; `row` is updated in place (and in state.sqlite).
        Returns the extra fields learnt (ready, or the warning of a failed call)."""
        extra: dict = {}
        if row["ended"] is not None or not row["instance_id"]:
            return extra
        from ..backends.providers.launch import show  # only to ask a provider: httpx stays out of start-up

        try:
            info = show(row["provider"], row["instance_id"], provider_urls(self.config))
            state = info.status or "pending"
            ssh_host, ssh_port = info.ssh_host, info.ssh_port
            if ssh_host is None and state.lower() in NOT_RUNNING:  # keep where it was: its runs are found by it
                ssh_host, ssh_port = row["ssh_host"], row["ssh_port"]
            self.store.instance_update(row["key"], state=state, ssh_host=ssh_host, ssh_port=ssh_port)
            row.update(state=state, ssh_host=ssh_host, ssh_port=ssh_port)
            extra["ready"] = info.ready
        except ZeldaError as exc:
            if gone(exc):  # the provider no longer knows it: it stops costing from now
                self.store.instance_update(row["key"], ended=now, state="gone")
                row.update(ended=now, state="gone")
            extra["warning"] = str(exc)
        return extra

    def box_gone(self, host: str, ask: bool = False) -> InstanceRow | None:
        """The tracked instance behind `host` when the provider said it is gone or no longer running
        (destroyed, exited, preempted...); None while it runs, or when no tracked instance is behind
        the host. `ask`: ask the provider now (else as the last answer recorded it)."""
        row = self._newest_at(host)
        if row is None:
            return None
        if ask:
            self._refresh(row, time.time())
        if row["ended"] is not None or str(row["state"]).lower() in NOT_RUNNING:
            return InstanceRow.from_record(row, spent_usd=round(spent_usd(row, time.time()), 2))
        return None

    def _newest_at(self, host: str) -> dict | None:
        """The most recently rented tracked instance whose SSH endpoint is `host` (ended or not)."""
        try:
            spec = self.hosts.resolve(host)
        except ZeldaError:
            return None
        found = [r for r in self.store.instance_rows()
                 if r["ssh_host"] == spec.hostname and (r["ssh_port"] or 22) == spec.port]
        return max(found, key=lambda r: r["started"] or 0.0) if found else None

    def destroy(self, key: str) -> InstanceRow:
        """Destroy a tracked instance (by key or id); also a `provider:id` that was rented but never
        recorded (the launch said so). A 404/410 answer means it is already gone: recorded as such."""
        from ..backends.providers.launch import destroy, split_key

        row = next((r for r in self.store.instance_rows() if r["key"] == key or r["instance_id"] == key), None)
        if row is None:
            if ":" not in key:
                raise ZeldaError(f"no tracked instance '{key}' (see `zelda-tui instances list`)", exit_code=2)
            provider, instance_id = split_key(key)
            destroy(provider, instance_id, provider_urls(self.config))
            ended = time.time()
            unnamed = [r for r in self.store.instance_rows()
                       if r["provider"] == provider and not r["instance_id"] and r["ended"] is None]
            if len(unnamed) == 1:  # the reservation of the launch that could not record this id
                return self._ended(unnamed[0], ended, "destroyed", key=key, instance_id=instance_id)
            return InstanceRow(key=key, provider=provider, instance_id=instance_id, state="destroyed", ended=ended,
                               tracked=False)
        if row["ended"] is not None:
            raise ZeldaError(f"{row['key']} was already destroyed")
        if not row["instance_id"]:
            raise ZeldaError(f"{row['key']}: the provider never told us its instance id ({row['state']}) — find it in "
                             f"the provider's console, then `zelda-tui instances destroy {row['provider']}:ID --yes`")
        state = "destroyed"
        try:
            destroy(row["provider"], row["instance_id"], provider_urls(self.config))
        except ZeldaError as exc:
            if not gone(exc):
                raise
            state = "gone"
        return self._ended(row, time.time(), state)

    def _ended(self, row: dict, ended: float, state: str, **changes: str) -> InstanceRow:
        """Record the end of an instance (`changes`: columns a reservation learns only now) and its final spend."""
        self.store.instance_update(row["key"], ended=ended, state=state, **changes)
        done = {**row, **changes, "ended": ended, "state": state}
        return InstanceRow.from_record(done, spent_usd=round(spent_usd(done, ended), 2))
