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
        gcp_table = self.config.table("providers").get("gcp")
        offers, warnings = search_offers(providers, load_catalog(), self._provider_urls(),
                                         gcp_project=gcp_table.get("project") if isinstance(gcp_table, dict) else None)
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
        raw = self.config.table("providers")
        return {n: raw[n]["base_url"] for n in ("vast", "vultr", "gcp") if isinstance(raw.get(n), dict) and "base_url" in raw[n]}

    def _launch_spec(self):
        from ..backends.providers.launch import LaunchSpec

        raw = self.config.table("providers")
        vast_t, vultr_t = raw.get("vast", {}), raw.get("vultr", {})
        defaults = LaunchSpec()
        return LaunchSpec(image=vast_t.get("image", defaults.image), disk_gb=int(vast_t.get("disk_gb", defaults.disk_gb)),
                          label=f"zelda-tui {self.config.model.name}", onstart=vast_t.get("onstart", ""),
                          ssh_key_id=vultr_t.get("ssh_key_id", ""))

    def budget(self) -> dict:
        """[budget] limits and what tracked instances have cost so far ($/h x time held)."""
        raw = self.config.table("budget")
        now = time.time()
        spent = sum(spent_usd(r, now) for r in self.store.instance_rows())
        total = raw.get("max_total_usd")
        return {"max_total_usd": total, "max_hourly_usd": raw.get("max_hourly_usd"), "spent_usd": round(spent, 2),
                "left_usd": round(total - spent, 2) if total is not None else None,
                "max_runtime_hours": raw.get("max_runtime_hours")}

    def launch_plan(self, key: str, phase: int | None = None) -> dict:
        """What a launch would rent and cost, and whether the budget allows it (nothing is rented)."""
        from ..backends.providers.launch import describe_launch, split_key

        provider, _ = split_key(key)
        rows, _ = self.offers_search((provider,), query="", sort="dph_total", phase=phase)
        row = next((r for r in rows if r["key"] == key), None)
        if row is None:
            raise ZeldaError(f"{key}: offer not found (gone or rented meanwhile) — search again")
        budget = self.budget()
        problems = []
        if budget["max_hourly_usd"] is not None and row["dph_total"] > budget["max_hourly_usd"]:
            problems.append(f"${row['dph_total']:.2f}/h is over budget.max_hourly_usd ${budget['max_hourly_usd']:.2f}")
        if budget["left_usd"] is not None and row["dollars"] is not None and row["dollars"] > budget["left_usd"]:
            problems.append(f"the estimated ${row['dollars']:.2f} is more than the ${budget['left_usd']:.2f} budget left")
        return {"offer": row, "budget": budget, "over_budget": problems,
                "request": describe_launch(key, self._launch_spec(), self._provider_urls())}

    def offers_launch(self, key: str, phase: int | None = None, force: bool = False) -> dict:
        """Rent the offer after the budget guard; the instance is tracked only once the provider said yes."""
        from ..backends.providers.launch import launch

        plan = self.launch_plan(key, phase)
        if plan["over_budget"] and not force:
            raise ZeldaError(f"{key}: not launched: " + "; ".join(plan["over_budget"]))
        row = plan["offer"]
        instance_id = launch(key, self._launch_spec(), self._provider_urls())
        tracked = {"key": f"{row['provider']}:{instance_id}", "provider": row["provider"], "instance_id": instance_id,
                   "offer": key, "gpu_name": row["gpu_name"], "num_gpus": row["num_gpus"], "dph_total": row["dph_total"],
                   "started": time.time(), "ended": None, "state": "starting", "ssh_host": None, "ssh_port": None}
        self.store.instance_add(tracked)
        return tracked

    def instances_list(self, refresh: bool = True) -> list[dict]:
        """Tracked instances with spend so far; live status/SSH endpoint from the provider when reachable."""
        from ..backends.providers.launch import show

        now = time.time()
        out = []
        for row in self.store.instance_rows():
            if refresh and row["ended"] is None:
                try:
                    info = show(row["provider"], row["instance_id"], self._provider_urls())
                    self.store.instance_update(row["key"], state=info.status or "pending", ssh_host=info.ssh_host,
                                               ssh_port=info.ssh_port)
                    row.update(state=info.status or "pending", ssh_host=info.ssh_host, ssh_port=info.ssh_port)
                    row["ready"] = info.ready
                except ZeldaError as exc:
                    row["warning"] = str(exc)
            row["hours"] = round(held_hours(row, now), 3)
            row["spent_usd"] = round(spent_usd(row, now), 2)
            out.append(row)
        return out

    def instance_destroy(self, key: str) -> dict:
        from ..backends.providers.launch import destroy

        row = next((r for r in self.store.instance_rows() if r["key"] == key or r["instance_id"] == key), None)
        if row is None:
            raise ZeldaError(f"no tracked instance '{key}' (see `zelda-tui instances list`)")
        if row["ended"] is not None:
            raise ZeldaError(f"{row['key']} was already destroyed")
        destroy(row["provider"], row["instance_id"], self._provider_urls())
        ended = time.time()
        self.store.instance_update(row["key"], ended=ended, state="destroyed")
        done = {**row, "ended": ended, "state": "destroyed"}
        return {**done, "spent_usd": round(spent_usd(done, ended), 2)}

    def instances_enforce(self, dry_run: bool = False) -> list[dict]:
        """Destroy what the config says must not keep running (what `budget` promises, enforced):

        * an instance held longer than `budget.max_runtime_hours`;
        * with `budget.on_idle = "destroy"`: an instance whose runs (remote runs on its SSH
          endpoint) have all ended more than `monitoring.gpu_idle_shutdown_minutes` ago.

        Returns one row per instance acted on (or, with dry_run, that would be), with the reason.
        """
        from ..core import runs as runs_mod

        budget, mon = self.config.table("budget"), self.config.table("monitoring")
        try:
            max_hours = float(budget["max_runtime_hours"]) if budget.get("max_runtime_hours") else None
            grace_s = float(mon.get("gpu_idle_shutdown_minutes", 30)) * 60
        except (TypeError, ValueError):
            raise ZeldaError(f"{self.config.path} [budget] max_runtime_hours / [monitoring] gpu_idle_shutdown_minutes: "
                             "must be numbers") from None
        on_idle = budget.get("on_idle", "alert")
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
                if infos and all(i["state"] not in runs_mod.ACTIVE_STATES for i in infos):
                    ended = max((i["finished"] or i["heartbeat"] or inst["started"]) for i in infos)
                    if now - ended > grace_s:
                        last = max(infos, key=lambda i: i["finished"] or i["heartbeat"] or 0)
                        reason = (f"idle {(now - ended) / 60:.0f} min since its last run {last['name']} ended "
                                  f"({last['state']}); budget.on_idle = \"destroy\"")
            if reason is None:
                continue
            row = {"key": inst["key"], "reason": reason, "destroyed": False, "spent_usd": round(spent_usd(inst, now), 2)}
            if not dry_run:
                done = self.instance_destroy(inst["key"])
                row.update(destroyed=True, spent_usd=done["spent_usd"])
            acted.append(row)
        return acted
