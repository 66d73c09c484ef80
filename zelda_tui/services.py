"""The one factory: builds the service objects the TUI screens and the CLI both use.

Screens never construct core/backends objects themselves; tests build `Services` over a temp
workspace exactly as the CLI does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .backends.tokenizer import load_token_counter
from .core import config as config_mod
from .core import mix as mix_mod
from .core import registry as registry_mod
from .core.config import Config, MixSpec
from .core.inventory import DatasetReport, Inventory, Progress, start_process_helpers
from .core.store import Store


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


def build_services(config_path: str | Path | None = None) -> Services:
    path = config_mod.discover(config_path)
    cfg = config_mod.load(path)
    store = Store(cfg.state_path)
    return Services(config=cfg, store=store, inventory=Inventory(cfg, store, load_token_counter(cfg.model)))
