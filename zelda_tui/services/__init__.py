"""The one factory: builds the services the TUI screens and the CLI both use.

Screens never construct core/backends objects themselves; tests build `Services` over a temp
workspace exactly as the CLI does. `Services` holds one service per subject (datasets, runs,
offers, ...); each takes what it needs in its constructor and none reaches another through
`self`, so the wiring below is the whole dependency graph:

    datasets(config, inventory)     asm(config)     hosts(config)
    estimates(config, store, datasets)
    instances(config, store, hosts)
    offers(config, store, estimates, instances)
    runs(config, store, datasets, instances, hosts)
    recovery(config, store, runs, offers, instances, hosts); runs.when_lost = recovery.auto
    evals(config, store, asm, datasets, runs)
    enforcer(config, store, instances, runs)
    export(config, store, runs, evals)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backends.ssh_base import UnknownHostKey  # re-exported: the UI asks the user about new host keys
from ..backends.tokenizer import load_token_counter
from ..core import config as config_mod
from ..core.config import Config
from ..core.inventory import Inventory, start_process_helpers
from ..core.store import Store
from .asm import AsmService
from .datasets import DatasetService
from .enforce import BudgetEnforcer
from .estimates import EstimateService
from .evals import EvalService
from .export import ExportService
from .hosts import Hosts
from .instances import InstanceRegistry
from .offers import OfferService
from .recovery import RecoveryService
from .runs import RunService


@dataclass
class Services:
    config: Config
    store: Store
    inventory: Inventory
    datasets: DatasetService
    asm: AsmService
    hosts: Hosts
    estimates: EstimateService
    instances: InstanceRegistry
    offers: OfferService
    recovery: RecoveryService
    runs: RunService
    evals: EvalService
    enforcer: BudgetEnforcer
    export: ExportService

    def prepare_for_ui(self) -> None:
        """Start multiprocessing's helper processes now, before a UI swaps out sys.stderr.

        Textual replaces sys.stderr with a capture object whose fileno() is not a real fd; the
        resource tracker that a pool would start lazily later passes stderr's fd to its child
        and fails with "bad value(s) in fds_to_keep".
        """
        start_process_helpers()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_services(config_path: str | Path | None = None) -> Services:
    path = config_mod.discover(config_path)
    cfg = config_mod.load(path)
    store = Store(cfg.state_path)
    inventory = Inventory(cfg, store, load_token_counter(cfg.model))
    datasets = DatasetService(cfg, inventory)
    asm = AsmService(cfg)
    hosts = Hosts(cfg)
    estimates = EstimateService(cfg, store, datasets)
    instances = InstanceRegistry(cfg, store, hosts)
    offers = OfferService(cfg, store, estimates, instances)
    runs = RunService(cfg, store, datasets, instances, hosts)
    recovery = RecoveryService(cfg, store, runs, offers, instances, hosts)
    runs.when_lost = recovery.auto  # a followed run found lost: [recovery] auto goes on elsewhere (#17)
    evals = EvalService(cfg, store, asm, datasets, runs)
    enforcer = BudgetEnforcer(cfg, store, instances, runs)
    export = ExportService(cfg, store, runs, evals)
    return Services(config=cfg, store=store, recovery=recovery, inventory=inventory, datasets=datasets, asm=asm, hosts=hosts,
                    estimates=estimates, instances=instances, offers=offers, runs=runs, evals=evals,
                    enforcer=enforcer, export=export)


__all__ = ["Services", "UnknownHostKey", "build_services"]
