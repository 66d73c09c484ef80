"""GPU offers, launch with the budget guard, tracked instances."""

from __future__ import annotations

import time
from pathlib import Path

from ..core import run_plan
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.offers import held_hours, spent_usd
from ..core.inventory import Inventory
from ..core.store import Store


class OfferServices:
    config: Config
    store: Store
    inventory: Inventory

    def offers_search(self, providers: tuple[str, ...] = ("vast", "vultr", "gcp"), query: str | None = None,
                      sort: str = "dph_total", phase: int | None = None) -> tuple[list[dict], list[str]]:
        """Offers of every provider filtered by a vastai query, each with fit / hours / dollars
        for the chosen phase's mix (default: the last phase). Returns (rows, warnings)."""
        from ..backends.providers.search import search_offers
        from ..core import offer_query
        from ..core.catalog import load_catalog

        parsed = offer_query.parse(offer_query.DEFAULT_QUERY if query is None else query)
        offers, warnings = search_offers(providers, load_catalog(), self._provider_urls(),
                                         gcp_project=self.config.providers["gcp"].project, query=parsed)
        chosen = offer_query.sort_offers(offer_query.filter_offers(offers, parsed), sort)
        return self._annotate(chosen, phase, warnings), warnings

    def _annotate(self, offers: list, phase: int | None, warnings: list[str]) -> list[dict]:
        from ..core import estimate as est

        cfg = run_plan.plan_run(self.config, None, phase)
        rows = [{"key": o.key, "provider": o.provider, "id": o.id, "gpu_name": o.gpu_name, "num_gpus": o.num_gpus,
                 "gpu_ram": round(o.gpu_ram, 2), "dph_total": round(o.dph_total, 4), "region": o.region,
                 "reliability": o.reliability, "available": o.available, "price_date": o.price_date,
                 "price_source": o.price_source, "fit": None, "vram_gb": None, "hours": None, "dollars": None,
                 "tokens_per_s_source": None} for o in offers]
        try:
            arch = est.lookup(cfg.model.base)
            tokens = self.mix_train_tokens(cfg.data.mix)
        except ZeldaError as exc:
            warnings.append(f"no fit/cost column: {exc}")
            return rows
        vram = est.estimate_vram(arch, seq_len=cfg.model.max_seq_len, micro_batch=cfg.train.micro_batch,
                                 **est.vram_options(cfg))
        measured = self.store.throughput_measured()
        for row, offer in zip(rows, offers):
            row["vram_gb"] = round(vram.total_gb, 1)
            row["fit"] = vram.fits(offer.gpu_ram) if offer.gpu_ram else None
            gpu = est.normalise_gpu_name(offer.gpu_name, offer.gpu_ram)
            if gpu is None:
                continue
            tps, source = est.tokens_per_s(arch, gpu, cfg.train.micro_batch, measured)
            hours = est.estimate_time(tokens, cfg.train.epochs, tps, gpus=offer.num_gpus)
            row.update(hours=round(hours, 2), dollars=round(est.estimate_cost(hours, offer.dph_total), 2),
                       tokens_per_s_source=source)
        return rows

    def _provider_urls(self) -> dict[str, str]:
        """[providers.vast] base_url etc. (vast, vultr, gcp): for proxies, and for the tests' local replay server."""
        return {n: p.base_url for n, p in self.config.providers.items() if p.base_url}

    def _launch_spec(self):
        from ..backends.providers.launch import LaunchSpec

        vast, vultr = self.config.providers["vast"], self.config.providers["vultr"]
        defaults = LaunchSpec()
        return LaunchSpec(image=vast.image or defaults.image, disk_gb=vast.disk_gb or defaults.disk_gb,
                          label=f"zelda-tui {self.config.model.name}", onstart=vast.onstart,
                          ssh_key_id=vultr.ssh_key_id)

    def budget(self) -> dict:
        """[budget] limits and what tracked instances have cost so far ($/h x time held)."""
        b = self.config.budget
        now = time.time()
        spent = sum(spent_usd(r, now) for r in self.store.instance_rows())
        total = b.max_total_usd
        return {"max_total_usd": total, "max_hourly_usd": b.max_hourly_usd, "spent_usd": round(spent, 2),
                "left_usd": round(total - spent, 2) if total is not None else None,
                "max_runtime_hours": b.max_runtime_hours}

    def launch_plan(self, key: str, phase: int | None = None) -> dict:
        """What a launch would rent and cost, and whether the budget allows it (nothing is rented).

        The guard refuses (unless forced) when the hourly price is over `max_hourly_usd`, when nothing
        is left of `max_total_usd`, and when the total cannot be estimated while a total budget is set:
        an unknown cost is "cannot check", never "fits".
        """
        from ..backends.providers.launch import describe_launch, split_key

        provider, offer_id = split_key(key)
        # this one offer, whatever filter found it: a Vast offer seen with verified=false is rentable too
        query = f"id={offer_id} verified=any external=any" if provider == "vast" else ""
        rows, _ = self.offers_search((provider,), query=query, sort="dph_total", phase=phase)
        row = next((r for r in rows if r["key"] == key), None)
        if row is None:
            raise ZeldaError(f"{key}: offer not found (gone or rented meanwhile) — search again")
        budget = self.budget()
        problems = []
        if budget["max_hourly_usd"] is not None and row["dph_total"] > budget["max_hourly_usd"]:
            problems.append(f"${row['dph_total']:.2f}/h is over budget.max_hourly_usd ${budget['max_hourly_usd']:.2f}")
        left = budget["left_usd"]
        if left is not None and left <= 0:
            problems.append(f"no budget left: ${budget['spent_usd']:.2f} spent of budget.max_total_usd "
                            f"${budget['max_total_usd']:.2f}")
        elif left is not None and row["dollars"] is None:
            problems.append(f"cannot check the cost against the ${left:.2f} budget left: no time estimate for "
                            f"{row['num_gpus']} x {row['gpu_name']} (no tokens/s figure for this GPU)")
        elif left is not None and row["dollars"] > left:
            problems.append(f"the estimated ${row['dollars']:.2f} is more than the ${left:.2f} budget left")
        return {"offer": row, "budget": budget, "over_budget": problems,
                "request": describe_launch(key, self._launch_spec(), self._provider_urls())}

    def offers_launch(self, key: str, phase: int | None = None, force: bool = False) -> dict:
        """Rent the offer after the budget guard, recorded before it is rented (DESIGN: state).

        A "launching" row is written first, so a state database that cannot be written stops the
        launch before any money is spent. Once the provider answers with the instance id the row
        gets it; if that write fails the instance is billing untracked: the error names it and how
        to destroy it. A rent refused by the provider removes the reservation (nothing was rented);
        a request without an answer leaves it "unconfirmed", counted against the budget.
        """
        from ..backends.providers.http import ApiError
        from ..backends.providers.launch import launch

        plan = self.launch_plan(key, phase)
        if plan["over_budget"] and not force:
            raise ZeldaError(f"{key}: not launched: " + "; ".join(plan["over_budget"]) + " (--force to launch anyway)")
        row = plan["offer"]
        started = time.time()
        tracked = {"key": f"{row['provider']}:launching@{row['id']}@{started:.3f}", "provider": row["provider"],
                   "instance_id": "", "offer": key, "gpu_name": row["gpu_name"], "num_gpus": row["num_gpus"],
                   "dph_total": row["dph_total"], "started": started, "ended": None, "state": "launching",
                   "ssh_host": None, "ssh_port": None}
        self.store.instance_add(tracked)
        try:
            instance_id = launch(key, self._launch_spec(), self._provider_urls())
        except ApiError as exc:
            if exc.status is None:  # the request may have reached the provider: keep it on the books
                self.store.instance_update(tracked["key"], state="unconfirmed")
                raise ZeldaError(f"{exc} — the rent may have gone through: check the provider's console; "
                                 f"kept as {tracked['key']} (unconfirmed) in `zelda-tui instances list`") from None
            self.store.instance_delete(tracked["key"])
            raise
        except BaseException:
            self.store.instance_delete(tracked["key"])
            raise
        new_key = f"{row['provider']}:{instance_id}"
        try:
            self.store.instance_update(tracked["key"], key=new_key, instance_id=instance_id, state="starting")
        except ZeldaError as exc:
            raise ZeldaError(f"RENTED {new_key} ({row['num_gpus']} x {row['gpu_name']}, ${row['dph_total']:.3f}/h) "
                             f"but could not record it: {exc} — it is billing now; destroy it with "
                             f"`zelda-tui instances destroy {new_key} --yes`{_provider_destroy_hint(row['provider'], instance_id)}"
                             ) from None
        return {**tracked, "key": new_key, "instance_id": instance_id, "state": "starting"}

    def instances_list(self, refresh: bool = True) -> list[dict]:
        """Tracked instances with spend so far; live status/SSH endpoint from the provider when reachable.

        An instance the provider no longer knows (404/410) is gone: it is marked destroyed, so its
        spend stops counting, instead of showing "running" for ever.
        """
        now = time.time()
        out = []
        for row in self.store.instance_rows():
            if refresh and row["ended"] is None and row["instance_id"]:
                from ..backends.providers.launch import show  # only to ask a provider: httpx stays out of start-up

                try:
                    info = show(row["provider"], row["instance_id"], self._provider_urls())
                    self.store.instance_update(row["key"], state=info.status or "pending", ssh_host=info.ssh_host,
                                               ssh_port=info.ssh_port)
                    row.update(state=info.status or "pending", ssh_host=info.ssh_host, ssh_port=info.ssh_port)
                    row["ready"] = info.ready
                except ZeldaError as exc:
                    if _gone(exc):
                        row.update(self._mark_gone(row, now))
                    row["warning"] = str(exc)
            row["hours"] = round(held_hours(row, now), 3)
            row["spent_usd"] = round(spent_usd(row, now), 2)
            out.append(row)
        return out

    def _mark_gone(self, row: dict, now: float) -> dict:
        """The provider says the instance no longer exists: it stops costing from now."""
        self.store.instance_update(row["key"], ended=now, state="gone")
        return {"ended": now, "state": "gone"}

    def instance_destroy(self, key: str) -> dict:
        """Destroy a tracked instance (by key or id); also a `provider:id` that was rented but never
        recorded (the launch said so). A 404/410 answer means it is already gone: recorded as such."""
        from ..backends.providers.launch import destroy, split_key

        row = next((r for r in self.store.instance_rows() if r["key"] == key or r["instance_id"] == key), None)
        if row is None:
            provider, instance_id = split_key(key) if ":" in key else (None, None)
            if provider is None:
                raise ZeldaError(f"no tracked instance '{key}' (see `zelda-tui instances list`)", exit_code=2)
            destroy(provider, instance_id, self._provider_urls())
            ended = time.time()
            unnamed = [r for r in self.store.instance_rows()
                       if r["provider"] == provider and not r["instance_id"] and r["ended"] is None]
            if len(unnamed) == 1:  # the reservation of the launch that could not record this id
                self.store.instance_update(unnamed[0]["key"], key=key, instance_id=instance_id, ended=ended,
                                           state="destroyed")
                done = {**unnamed[0], "key": key, "instance_id": instance_id, "ended": ended, "state": "destroyed"}
                return {**done, "spent_usd": round(spent_usd(done, ended), 2)}
            return {"key": key, "provider": provider, "instance_id": instance_id, "state": "destroyed",
                    "started": None, "ended": ended, "spent_usd": None}
        if row["ended"] is not None:
            raise ZeldaError(f"{row['key']} was already destroyed")
        if not row["instance_id"]:
            raise ZeldaError(f"{row['key']}: the provider never told us its instance id ({row['state']}) — find it in "
                             f"the provider's console, then `zelda-tui instances destroy {row['provider']}:ID --yes`")
        state = "destroyed"
        try:
            destroy(row["provider"], row["instance_id"], self._provider_urls())
        except ZeldaError as exc:
            if not _gone(exc):
                raise
            state = "gone"
        ended = time.time()
        self.store.instance_update(row["key"], ended=ended, state=state)
        done = {**row, "ended": ended, "state": state}
        return {**done, "spent_usd": round(spent_usd(done, ended), 2)}

    def instances_enforce(self, dry_run: bool = False) -> list[dict]:
        """Destroy what the config says must not keep running (what `budget` promises, enforced):

        * an instance held longer than `budget.max_runtime_hours`;
        * with `budget.on_idle = "destroy"`: an instance whose runs (remote runs on its SSH
          endpoint) have all ended more than `monitoring.gpu_idle_shutdown_minutes` ago.

        Returns one row per instance acted on (or, with dry_run, that would be), with the reason.
        Every instance is tried even when one fails: a failed row has `error` set.
        """
        from ..core import runs as runs_mod

        max_hours = self.config.budget.max_runtime_hours
        grace_s = self.config.monitoring.gpu_idle_shutdown_minutes * 60
        on_idle = self.config.budget.on_idle
        now = time.time()
        remote_runs = [r for r in self.store.run_rows() if r["host"] != "local" and r.get("remote_dir")]
        instance_of = ({r["name"]: (self.instance_for_host(r["host"]) or {}).get("key") for r in remote_runs}
                       if on_idle == "destroy" else {})  # each run's host resolved once, not once per instance
        acted = []
        for inst in self.store.instance_rows():
            if inst["ended"] is not None:
                continue
            hours = held_hours(inst, now)
            reason = None
            if max_hours is not None and hours > max_hours:
                reason = f"held {hours:.1f} h, past budget.max_runtime_hours = {max_hours:g}"
            elif on_idle == "destroy":
                mine = [r for r in remote_runs if instance_of[r["name"]] == inst["key"]]
                infos = [self.run_info(Path(r["run_dir"]), r) for r in mine]
                if infos and all(not runs_mod.RunState(i["state"]).is_live for i in infos):
                    ended = max((i["finished"] or i["heartbeat"] or inst["started"]) for i in infos)
                    if now - ended > grace_s:
                        last = max(infos, key=lambda i: i["finished"] or i["heartbeat"] or 0)
                        reason = (f"idle {(now - ended) / 60:.0f} min since its last run {last['name']} ended "
                                  f"({last['state']}); budget.on_idle = \"destroy\"")
            if reason is None:
                continue
            row = {"key": inst["key"], "reason": reason, "destroyed": False, "state": inst["state"],
                   "spent_usd": round(spent_usd(inst, now), 2), "error": None}
            if not dry_run:
                try:
                    done = self.instance_destroy(inst["key"])
                    row.update(destroyed=True, state=done["state"], spent_usd=done["spent_usd"])
                except ZeldaError as exc:
                    row["error"] = str(exc)
            acted.append(row)
        return acted


def _gone(exc: ZeldaError) -> bool:
    """A provider answer that means the instance no longer exists (404 / 410)."""
    return getattr(exc, "status", None) in (404, 410)


def _provider_destroy_hint(provider: str, instance_id: str) -> str:
    """The provider's own way, for when zelda-tui itself cannot run (its state database is broken)."""
    if provider == "vast":
        return f" or `vastai destroy instance {instance_id}`"
    if provider == "vultr":
        return f" or `vultr-cli instance delete {instance_id}`"
    return ""
