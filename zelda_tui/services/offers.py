"""GPU offers, launch with the budget guard, tracked instances."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..core import run_plan
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.store import Store
from .estimates import EstimateService
from .instances import InstanceRegistry, provider_urls
from .views import InstanceRow, LaunchPlan, OfferRow


@dataclass
class OfferService:
    """Offers of every provider with fit and cost for the plan; launch behind the budget guard."""

    config: Config
    store: Store
    estimates: EstimateService
    instances: InstanceRegistry

    def search(self, providers: tuple[str, ...] = ("vast", "vultr", "gcp"), query: str | None = None,
                      sort: str = "dph_total", phase: int | None = None) -> tuple[list[OfferRow], list[str]]:
        """Offers of every provider filtered by a vastai query, each with fit / hours / dollars
        for the chosen phase's mix (default: the last phase). Returns (rows, warnings)."""
        from ..backends.providers.search import search_offers
        from ..core import offer_query
        from ..core.catalog import load_catalog

        parsed = offer_query.parse(offer_query.DEFAULT_QUERY if query is None else query)
        offers, warnings = search_offers(providers, load_catalog(), provider_urls(self.config),
                                         gcp_project=self.config.providers["gcp"].project, query=parsed)
        chosen = offer_query.sort_offers(offer_query.filter_offers(offers, parsed), sort)
        return self._annotate(chosen, phase, warnings), warnings

    def _annotate(self, offers: list, phase: int | None, warnings: list[str]) -> list[OfferRow]:
        from ..core import estimate as est

        cfg = run_plan.plan_run(self.config, None, phase)
        rows = [OfferRow(key=o.key, provider=o.provider, id=o.id, gpu_name=o.gpu_name, num_gpus=o.num_gpus,
                         gpu_ram=round(o.gpu_ram, 2), dph_total=round(o.dph_total, 4), region=o.region,
                         reliability=o.reliability, available=o.available, price_date=o.price_date,
                         price_source=o.price_source) for o in offers]
        try:
            arch = est.lookup(cfg.model.base)
            tokens = self.estimates.mix_train_tokens(cfg.data.mix)
        except ZeldaError as exc:
            warnings.append(f"no fit/cost column: {exc}")
            return rows
        vram = est.estimate_vram(arch, seq_len=cfg.model.max_seq_len, micro_batch=cfg.train.micro_batch,
                                 **est.vram_options(cfg))
        measured = self.store.throughput_measured()
        out = []
        for row, offer in zip(rows, offers):
            row = replace(row, vram_gb=round(vram.total_gb, 1), fit=vram.fits(offer.gpu_ram) if offer.gpu_ram else None)
            try:
                run = est.estimate_on_gpu(arch, vram, offer.gpu_name, offer.num_gpus, offer.dph_total, tokens,
                                          cfg.train.epochs, cfg.train.micro_batch, measured, gpu_ram=offer.gpu_ram)
            except est.UnknownGpu:  # no figures for the card: its fit alone
                out.append(row)
                continue
            out.append(replace(row, hours=round(run.hours, 2), dollars=round(run.dollars, 2),
                               tokens_per_s_source=run.tokens_per_s_source))
        return out

    def _launch_spec(self):
        from ..backends.providers.launch import LaunchSpec

        vast, vultr = self.config.providers["vast"], self.config.providers["vultr"]
        defaults = LaunchSpec()
        return LaunchSpec(image=vast.image or defaults.image, disk_gb=vast.disk_gb or defaults.disk_gb,
                          label=f"zelda-tui {self.config.model.name}", onstart=vast.onstart,
                          ssh_key_id=vultr.ssh_key_id)

    def launch_plan(self, key: str, phase: int | None = None) -> LaunchPlan:
        """What a launch would rent and cost, and whether the budget allows it (nothing is rented).

        The guard refuses (unless forced) when the hourly price is over `max_hourly_usd`, when nothing
        is left of `max_total_usd`, and when the total cannot be estimated while a total budget is set:
        an unknown cost is "cannot check", never "fits".
        """
        from ..backends.providers.launch import describe_launch, split_key

        provider, offer_id = split_key(key)
        # this one offer, whatever filter found it: a Vast offer seen with verified=false is rentable too
        query = f"id={offer_id} verified=any external=any" if provider == "vast" else ""
        rows, _ = self.search((provider,), query=query, sort="dph_total", phase=phase)
        row = next((r for r in rows if r.key == key), None)
        if row is None:
            raise ZeldaError(f"{key}: offer not found (gone or rented meanwhile) — search again")
        budget = self.instances.spend()
        problems = []
        if budget.max_hourly_usd is not None and row.dph_total > budget.max_hourly_usd:
            problems.append(f"${row.dph_total:.2f}/h is over budget.max_hourly_usd ${budget.max_hourly_usd:.2f}")
        left = budget.left_usd
        if left is not None and left <= 0:
            problems.append(f"no budget left: ${budget.spent_usd:.2f} spent of budget.max_total_usd "
                            f"${budget.max_total_usd:.2f}")
        elif left is not None and row.dollars is None:
            problems.append(f"cannot check the cost against the ${left:.2f} budget left: no time estimate for "
                            f"{row.num_gpus} x {row.gpu_name} (no tokens/s figure for this GPU)")
        elif left is not None and row.dollars is not None and row.dollars > left:
            problems.append(f"the estimated ${row.dollars:.2f} is more than the ${left:.2f} budget left")
        return LaunchPlan(offer=row, budget=budget, over_budget=problems,
                          request=describe_launch(key, self._launch_spec(), provider_urls(self.config)))

    def launch(self, key: str, phase: int | None = None, force: bool = False) -> InstanceRow:
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
        if plan.over_budget and not force:
            raise ZeldaError(f"{key}: not launched: " + "; ".join(plan.over_budget) + " (--force to launch anyway)")
        row = plan.offer
        started = time.time()
        tracked = InstanceRow(key=f"{row.provider}:launching@{row.id}@{started:.3f}", provider=row.provider,
                              instance_id="", offer=key, gpu_name=row.gpu_name, num_gpus=row.num_gpus,
                              dph_total=row.dph_total, started=started, ended=None, state="launching")
        self.store.instance_add(tracked.to_json())
        try:
            instance_id = launch(key, self._launch_spec(), provider_urls(self.config))
        except ApiError as exc:
            if exc.status is None:  # the request may have reached the provider: keep it on the books
                self.store.instance_update(tracked.key, state="unconfirmed")
                raise ZeldaError(f"{exc} — the rent may have gone through: check the provider's console; "
                                 f"kept as {tracked.key} (unconfirmed) in `zelda-tui instances list`") from None
            self.store.instance_delete(tracked.key)
            raise
        except ZeldaError:  # refused before any request was sent (no API key, no SSH key id): nothing rented
            self.store.instance_delete(tracked.key)
            raise
        except BaseException:  # interrupted (ctrl+c) or broken mid-request: the rent may have gone through
            self.store.instance_update(tracked.key, state="unconfirmed")
            raise
        new_key = f"{row.provider}:{instance_id}"
        try:
            self.store.instance_update(tracked.key, key=new_key, instance_id=instance_id, state="starting")
        except ZeldaError as exc:
            raise ZeldaError(f"RENTED {new_key} ({row.num_gpus} x {row.gpu_name}, ${row.dph_total:.3f}/h) "
                             f"but could not record it: {exc} — it is billing now; destroy it with "
                             f"`zelda-tui instances destroy {new_key} --yes`{_provider_destroy_hint(row.provider, instance_id)}"
                             ) from None
        return replace(tracked, key=new_key, instance_id=instance_id, state="starting")


def _provider_destroy_hint(provider: str, instance_id: str) -> str:
    """The provider's own way, for when zelda-tui itself cannot run (its state database is broken)."""
    if provider == "vast":
        return f" or `vastai destroy instance {instance_id}`"
    if provider == "vultr":
        return f" or `vultr-cli instance delete {instance_id}`"
    return ""
