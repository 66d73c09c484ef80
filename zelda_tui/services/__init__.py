"""The one factory: builds the service objects the TUI screens and the CLI both use.

Screens never construct core/backends objects themselves; tests build `Services` over a temp
workspace exactly as the CLI does. One `Services` object, its methods grouped by job in the
modules beside this one.
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
from .asm import AsmServices
from .datasets import DatasetServices
from .estimates import EstimateServices
from .evals import EvalServices
from .offers import OfferServices
from .remote import RemoteServices
from .runs import RunServices


@dataclass
class Services(DatasetServices, RunServices, RemoteServices, EstimateServices, OfferServices, EvalServices, AsmServices):
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

    def __enter__(self) -> "Services":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_services(config_path: str | Path | None = None) -> Services:
    path = config_mod.discover(config_path)
    cfg = config_mod.load(path)
    store = Store(cfg.state_path)
    return Services(config=cfg, store=store, inventory=Inventory(cfg, store, load_token_counter(cfg.model)))


__all__ = ["Services", "UnknownHostKey", "build_services"]
