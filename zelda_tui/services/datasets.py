"""Datasets and mixes: inventory scan, registry, mix preview/build/save."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core import mix as mix_mod
from ..core import registry as registry_mod
from ..core.config import Config, MixSpec
from ..core.errors import ZeldaError
from ..core.inventory import DatasetReport, Inventory, Progress
from .views import MixBuildView, RegistryIndexView, RegistryRow


@dataclass
class DatasetService:
    """Datasets (inventory, registry) and mixes (preview, build, ensure, save)."""

    config: Config
    inventory: Inventory

    def scan(self, force: bool = False, names: list[str] | None = None, progress: Progress | None = None) -> list[DatasetReport]:
        return self.inventory.scan(names=names, force=force, progress=progress)

    def registry_index(self, out: Path | None = None) -> RegistryIndexView:
        """Hash and store every configured dataset, and export the registry (to `out`, else the workspace's)."""
        rows, target = registry_mod.index(self.inventory, out=out)
        return RegistryIndexView(target, [RegistryRow(**row) for row in rows])

    # --- mixes -----------------------------------------------------------------------
    def mix_preview(self, mix: MixSpec | str) -> mix_mod.MixPlan:
        spec = self.config.mix(mix) if isinstance(mix, str) else mix
        return mix_mod.preview(self.config, self.inventory, spec)

    def mix_build(self, mix: MixSpec | str, out: Path | None = None, overwrite: bool = False,
                  progress: mix_mod.Progress | None = None) -> MixBuildView:
        spec = self.config.mix(mix) if isinstance(mix, str) else mix
        meta = mix_mod.build(self.config, spec, out, overwrite, progress, digest=self.inventory.sha256)
        return MixBuildView(out=out or self.config.mix_dir(spec.name), name=meta["name"],
                            total_train=meta["total_train"], total_eval=meta["total_eval"], metadata=meta)

    def mix_ensure(self, name: str, say: Callable[[str], None] | None = None) -> Path:
        """The bundle a run trains on, as config.toml says the mix is (DESIGN: a build matches a saved config).

        Missing: built. Built from other settings or other data (datasets, eval_fraction,
        min_eval_samples, seed, a source file's size/sha256): rebuilt, or refused when the mix
        is locked (what trained a model is never silently replaced). `say` gets one line on a rebuild.
        """
        spec = self.config.mix(name)
        bundle = self.config.mix_dir(name)
        if not (bundle / mix_mod.METADATA).is_file():
            if say:
                say(f"building mix {name}")
            self.mix_build(spec)
            return bundle
        drift = mix_mod.bundle_drift(self.config, spec, bundle, digest=self.inventory.sha256)
        if not drift:
            return bundle
        why = "; ".join(drift)
        if spec.locked:
            raise ZeldaError(f"{bundle}: the bundle of locked mix '{name}' does not match config.toml ({why}); "
                             f"not training on it and not rebuilding it — restore the mix or its datasets, "
                             f"or rebuild it on purpose with `zelda-tui mix build {name} --overwrite`")
        if say:
            say(f"mix {name}: the bundle does not match config.toml ({why}): rebuilding it")
        self.mix_build(spec, overwrite=True)
        return bundle

    def save_mix(self, mix: MixSpec) -> None:
        """Store a mix in config.toml (comments kept, atomic)."""
        self.config.set_mix(mix)
        self.config.save()
