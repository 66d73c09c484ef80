"""The one factory: builds the service objects the TUI screens and the CLI both use.

Screens never construct core/backends objects themselves; tests build `Services` over a temp
workspace exactly as the CLI does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .backends import runners
from .backends.tokenizer import load_token_counter
from .core import config as config_mod
from .core import mix as mix_mod
from .core import registry as registry_mod
from .core import run_plan, runs
from .core.config import Config, MixSpec
from .core.errors import ZeldaError
from .core.inventory import DatasetReport, Inventory, Progress, start_process_helpers
from .core.store import Store
from .core.train_config import load_run_config


@dataclass
class Services:
    config: Config
    store: Store
    inventory: Inventory

    def prepare_for_ui(self) -> None:
        """Start multiprocessing's helper processes now, before a UI swaps out sys.stderr.

        Textual replaces sys.stderr with a capture object whose fileno() is not a real fd; the
        resource tracker that a pool would start lazily later passes stderr's fd to its child
        and fails with "bad value(s) in fds_to_keep".
        """
        start_process_helpers()

    def close(self) -> None:
        self.store.close()

    # --- datasets --------------------------------------------------------------------
    def scan(self, force: bool = False, names: list[str] | None = None, progress: Progress | None = None) -> list[DatasetReport]:
        return self.inventory.scan(names=names, force=force, progress=progress)

    def registry_index(self, out: Path | None = None) -> tuple[list[dict], Path]:
        return registry_mod.index(self.inventory, out=out)

    # --- mixes -----------------------------------------------------------------------
    def mix_preview(self, mix: MixSpec | str) -> mix_mod.MixPlan:
        spec = self.config.mix(mix) if isinstance(mix, str) else mix
        return mix_mod.preview(self.config, self.inventory, spec)

    def mix_build(self, mix: MixSpec | str, out: Path | None = None, overwrite: bool = False,
                  progress: mix_mod.Progress | None = None) -> dict:
        spec = self.config.mix(mix) if isinstance(mix, str) else mix
        return mix_mod.build(self.config, spec, out, overwrite, progress)

    def save_mix(self, mix: MixSpec) -> None:
        """Store a mix in config.toml (comments kept, atomic)."""
        self.config.set_mix(mix)
        self.config.save()

    # --- runs ------------------------------------------------------------------------
    @property
    def runs_root(self) -> Path:
        return self.config.workspace / "runs"

    def train_start(self, mix: str | None = None, phase: int | None = None, **overrides) -> Path:
        """Freeze a run (building the mix bundle if it is missing) and start the trainer detached."""
        mix_name, phase = run_plan.choose_mix(self.config, mix, phase)
        bundle = self.config.mix_dir(mix_name)
        if not (bundle / "metadata.json").is_file():
            self.mix_build(mix_name)
        cfg = run_plan.plan_run(self.config, mix_name, phase, **overrides)
        run_dir = run_plan.create_run(self.config, cfg, bundle, self.runs_root)
        pid = runners.start_local(run_dir, cfg.train.gpus)
        self.store.run_upsert(run_dir.name, str(run_dir), "local", mix_name, phase, pid, "starting")
        return run_dir

    def run_dir(self, ref: str) -> Path:
        """A run by name (state database or runs/) or by path."""
        row = self.store.run_row(ref)
        if row:
            return Path(row["run_dir"])
        for candidate in (self.runs_root / ref, Path(ref)):
            if (candidate / runs.RUN_TOML).is_file():
                return candidate.resolve()
        raise ZeldaError(f"no run '{ref}' (see `zelda-tui train list`)")

    def run_list(self) -> list[dict]:
        """Every known run with its live state from status.json (a dead process shows as 'died')."""
        seen = {}
        for row in self.store.run_rows():
            seen[row["name"]] = row
        if self.runs_root.is_dir():
            for d in sorted(self.runs_root.iterdir()):
                if d.name not in seen and (d / runs.RUN_TOML).is_file():
                    try:  # a run dir the database does not know (copied in, or an older state.sqlite)
                        data = load_run_config(d).data
                        mix, phase = data.mix, data.phase
                    except ZeldaError:
                        mix, phase = "", None
                    seen[d.name] = {"name": d.name, "run_dir": str(d), "host": "local", "mix": mix, "phase": phase}
        infos = [self.run_info(Path(r["run_dir"]), r) for r in sorted(seen.values(), key=lambda r: r["name"], reverse=True)]
        for info in infos:
            if info["state"] == "completed" and not self.store.throughput_has(info["name"]):
                self._record_throughput(Path(info["run_dir"]))
        return infos

    def _record_throughput(self, run_dir: Path) -> None:
        """A completed GPU run's median tokens/s goes into the state database for the estimator."""
        metrics = runs.read_metrics(run_dir)
        hw = next((m for m in metrics if m.get("event") == "hardware"), None)
        rates = sorted(m["tokens_per_s"] for m in metrics if m.get("event") == "train" and m.get("tokens_per_s"))[1:]
        if not hw or hw.get("device") != "cuda" or not rates:
            return
        cfg = load_run_config(run_dir)
        self.store.throughput_save(run_dir.name, cfg.model.base, hw["gpu"], int(hw["gpus"]), rates[len(rates) // 2],
                                   int(hw["seq_len"]), int(hw["micro_batch"]), metrics[-1]["t"])

    def run_info(self, run_dir: Path, row: dict | None = None) -> dict:
        status = runs.read_status(run_dir) or runs.RunStatus(state="unknown")
        state = status.state
        if state in runs.ACTIVE_STATES and state != "created" and not runs.pid_alive(status.pid):
            state = "died"
        metrics = runs.read_metrics(run_dir)
        last_train = next((m for m in reversed(metrics) if m.get("event") == "train"), {})
        last_eval = next((m for m in reversed(metrics) if m.get("event") == "eval"), {})
        return {
            "name": run_dir.name, "run_dir": str(run_dir), "host": (row or {}).get("host", "local"),
            "mix": (row or {}).get("mix", ""), "phase": (row or {}).get("phase"),
            "state": state, "pid": status.pid, "step": status.step, "max_steps": status.max_steps,
            "loss": last_train.get("loss"), "eval_loss": last_eval.get("eval_loss"),
            "tokens_per_s": last_train.get("tokens_per_s"), "vram_peak_gb": last_train.get("vram_peak_gb"),
            "eta_s": last_train.get("eta_s") if state == "running" else None,
            "heartbeat": status.heartbeat, "last_checkpoint": status.last_checkpoint,
            "best_checkpoint": status.best_checkpoint, "message": status.message,
        }

    # --- estimates -------------------------------------------------------------------
    def mix_train_tokens(self, mix: str) -> int:
        """Tokens in a mix's train split: per dataset, train records x the QA mean sample length."""
        spec = self.config.mix(mix)
        reports = {r.name: r for r in self.scan(names=list(spec.datasets))}
        plan = self.mix_preview(spec)
        return int(sum(d.train * reports[d.name].qa["length"]["mean_tokens"] for d in plan.datasets))

    def estimate(self, gpu: str, gpus: int = 1, dollars_per_hour: float = 0.0, mix: str | None = None,
                 phase: int | None = None, model: str | None = None, **options) -> dict:
        """VRAM verdict, hours and dollars for training a mix/phase on a GPU (`zelda-tui estimate`)."""
        from .core import estimate as est

        cfg = run_plan.plan_run(self.config, mix, phase)
        tokens = self.mix_train_tokens(cfg.data.mix)
        epochs = cfg.train.epochs
        micro = options.pop("micro_batch", None) or cfg.train.micro_batch
        seq = options.pop("seq_len", None) or cfg.model.max_seq_len
        result = est.plan_run(
            model or cfg.model.base, gpu, gpus, dollars_per_hour, tokens, epochs, seq, micro,
            measured=self.store.throughput_measured(), **est.vram_options(cfg), **options,
        )
        return {
            "model": result.model_id, "gpu": result.gpu, "gpus": gpus, "mix": cfg.data.mix, "phase": cfg.data.phase,
            "train_tokens": tokens, "epochs": epochs, "seq_len": seq, "micro_batch": micro,
            "vram_gb": round(result.vram.total_gb, 2), "verdict": result.verdict,
            "vram_breakdown_gb": {k: round(v, 2) for k, v in result.vram.breakdown.items()},
            "tokens_per_s_per_gpu": round(result.tokens_per_s, 1), "tokens_per_s_source": result.tokens_per_s_source,
            "hours": round(result.hours, 2), "dollars": round(result.dollars, 2),
        }

    # --- offers ----------------------------------------------------------------------
    def offers_search(self, providers: tuple[str, ...] = ("vast", "vultr", "gcp"), query: str | None = None,
                      sort: str = "dph_total", phase: int | None = None) -> tuple[list[dict], list[str]]:
        """Offers of every provider filtered by a vastai query, each with fit / hours / dollars
        for the chosen phase's mix (default: the last phase). Returns (rows, warnings)."""
        from .backends.providers.search import search_offers
        from .core import offer_query
        from .core.catalog import load_catalog

        parsed = offer_query.parse(offer_query.DEFAULT_QUERY if query is None else query)
        offers, warnings = search_offers(providers, load_catalog(), self._provider_urls())
        chosen = offer_query.sort_offers(offer_query.filter_offers(offers, parsed), sort)
        return self._annotate(chosen, phase, warnings), warnings

    def _annotate(self, offers: list, phase: int | None, warnings: list[str]) -> list[dict]:
        from .core import estimate as est

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

    def _providers_table(self) -> dict:
        raw = self.config.doc.unwrap().get("providers", {})
        return raw if isinstance(raw, dict) else {}

    def _provider_urls(self) -> dict[str, str]:
        """[providers.vast] base_url etc.: for proxies, and for the tests' local replay server."""
        raw = self._providers_table()
        return {n: raw[n]["base_url"] for n in ("vast", "vultr") if isinstance(raw.get(n), dict) and "base_url" in raw[n]}

    def _launch_spec(self):
        from .backends.providers.launch import LaunchSpec

        raw = self._providers_table()
        vast_t, vultr_t = raw.get("vast", {}), raw.get("vultr", {})
        defaults = LaunchSpec()
        return LaunchSpec(image=vast_t.get("image", defaults.image), disk_gb=int(vast_t.get("disk_gb", defaults.disk_gb)),
                          label=f"zelda-tui {self.config.model.name}", onstart=vast_t.get("onstart", ""),
                          ssh_key_id=vultr_t.get("ssh_key_id", ""))

    def budget(self) -> dict:
        """[budget] limits and what tracked instances have cost so far ($/h x time held)."""
        raw = self.config.doc.unwrap().get("budget", {})
        now = time.time()
        spent = sum(r["dph_total"] * ((r["ended"] or now) - r["started"]) / 3600 for r in self.store.instance_rows())
        total = raw.get("max_total_usd")
        return {"max_total_usd": total, "max_hourly_usd": raw.get("max_hourly_usd"), "spent_usd": round(spent, 2),
                "left_usd": round(total - spent, 2) if total is not None else None,
                "max_runtime_hours": raw.get("max_runtime_hours")}

    def launch_plan(self, key: str, phase: int | None = None) -> dict:
        """What a launch would rent and cost, and whether the budget allows it (nothing is rented)."""
        from .backends.providers.launch import describe_launch, split_key

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
        from .backends.providers.launch import launch

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
        from .backends.providers.launch import show

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
            hours = ((row["ended"] or now) - row["started"]) / 3600
            row["hours"] = round(hours, 3)
            row["spent_usd"] = round(row["dph_total"] * hours, 2)
            out.append(row)
        return out

    def instance_destroy(self, key: str) -> dict:
        from .backends.providers.launch import destroy

        row = next((r for r in self.store.instance_rows() if r["key"] == key or r["instance_id"] == key), None)
        if row is None:
            raise ZeldaError(f"no tracked instance '{key}' (see `zelda-tui instances list`)")
        if row["ended"] is not None:
            raise ZeldaError(f"{row['key']} was already destroyed")
        destroy(row["provider"], row["instance_id"], self._provider_urls())
        ended = time.time()
        self.store.instance_update(row["key"], ended=ended, state="destroyed")
        return {**row, "ended": ended, "state": "destroyed", "spent_usd": round(row["dph_total"] * (ended - row["started"]) / 3600, 2)}

    def train_stop(self, ref: str) -> int:
        return runners.stop_local(self.run_dir(ref))

    def train_resume(self, ref: str) -> Path:
        """Start the trainer again in an existing run dir: it continues from the latest complete checkpoint."""
        run_dir = self.run_dir(ref)
        info = self.run_info(run_dir)
        if info["state"] in ("starting", "running", "stopping"):
            raise ZeldaError(f"{run_dir.name} is still {info['state']} (pid {info['pid']})")
        if info["state"] == "completed":
            raise ZeldaError(f"{run_dir.name} already completed")
        pid = runners.start_local(run_dir, load_run_config(run_dir).train.gpus)
        row = self.store.run_row(run_dir.name) or {"mix": "", "phase": None}
        self.store.run_upsert(run_dir.name, str(run_dir), "local", row["mix"], row["phase"], pid, "starting")
        return run_dir


def build_services(config_path: str | Path | None = None) -> Services:
    path = config_mod.discover(config_path)
    cfg = config_mod.load(path)
    store = Store(cfg.state_path)
    return Services(config=cfg, store=store, inventory=Inventory(cfg, store, load_token_counter(cfg.model)))
