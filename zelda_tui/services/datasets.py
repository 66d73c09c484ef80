"""Datasets and mixes: inventory scan, registry, mix preview/build/save."""

from __future__ import annotations

from pathlib import Path

from ..core import mix as mix_mod
from ..core import registry as registry_mod
from ..core.config import Config, MixSpec
from ..core.inventory import DatasetReport, Inventory, Progress
from ..core.store import Store


class DatasetServices:
    config: Config
    store: Store
    inventory: Inventory

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
