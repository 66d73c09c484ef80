"""config.toml: discovery, typed view, validation with file:line errors, comment-keeping edits.

The TOML document (tomlkit) is the source of truth; the dataclasses are a validated view of
it. Edits go through `Config.set_mix` etc., which change the document in place (comments and
order survive) and `Config.save` writes it atomically.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload
from urllib.parse import urlsplit

import tomlkit
import tomlkit.exceptions
from tomlkit.toml_document import TOMLDocument

from . import atomic
from .errors import ConfigError, where
from .train_config import DURING_TRAINING

ENV_VAR = "ZELDA_TUI_CONFIG"
DEFAULT_NAME = "config.toml"
DEFAULT_MAX_SEQ_LEN = 4096


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: Path
    tags: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class MixSpec:
    """A `[mix.NAME]` table: the ordered dataset list and the split parameters."""

    name: str
    datasets: tuple[str, ...]
    eval_fraction: float = 0.02
    min_eval_samples: int = 1
    seed: int = 42
    optional: tuple[str, ...] = ()
    description: str = ""
    locked: bool = False  # `locked = true`, or a description starting with "LOCKED": never rewritten by the app


@dataclass(frozen=True)
class ModelSpec:
    name: str = "model"
    base: str = ""
    alternatives: tuple[str, ...] = ()
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    tokenizer: str = ""


ON_IDLE = ("alert", "destroy")


@dataclass(frozen=True)
class BudgetSpec:
    """[budget]: what launches and held instances may cost; None = no limit."""

    max_total_usd: float | None = None  # refuse launches past this (estimated)
    max_hourly_usd: float | None = None  # refuse offers above this $/h
    max_runtime_hours: float | None = None  # destroy tracked instances held longer
    on_idle: str = "alert"  # one of ON_IDLE, after monitoring.gpu_idle_shutdown_minutes


@dataclass(frozen=True)
class MonitoringSpec:
    """[monitoring]: how a followed GPU box is watched (idle GPU, disk)."""

    gpu_idle_threshold_percent: float = 5.0
    gpu_idle_alert_minutes: float = 15.0
    gpu_idle_shutdown_minutes: float = 30.0
    disk_warning_percent: float = 85.0
    check_every_s: float = 60.0
    nvidia_smi: str = "nvidia-smi"


@dataclass(frozen=True)
class ProviderSpec:
    """One [providers.NAME] table; None = the provider backend's own default."""

    base_url: str | None = None  # API root: a proxy, or a test server (https, or http on loopback only)
    image: str | None = None  # vast: container image
    disk_gb: int | None = None  # vast: disk size
    onstart: str = ""  # vast: onstart script
    ssh_key_id: str = ""  # vultr: an SSH key id of the account
    project: str | None = None  # gcp: project id (else $GOOGLE_CLOUD_PROJECT / the credentials)


@dataclass(frozen=True)
class KeyBinding:
    """One `[keys]` line: a binding id as `?` shows it ("mix.build") and its keys ("f5", "f5,ctrl+b")."""

    binding_id: str
    keys: str
    where: str  # file:line [keys.ID]: the app names it when the id is none of its bindings


@dataclass(frozen=True)
class KeysSpec:
    """[keys]: the TUI's remapped keys. Key names are checked at load; the ids by the app, which owns its
    bindings (`check_ids`), so the list of ids lives in one place: the screens' Binding(id=...)."""

    bindings: tuple[KeyBinding, ...] = ()

    @property
    def keymap(self) -> dict[str, str]:
        """binding id -> keys, as Textual's App.set_keymap takes it."""
        return {b.binding_id: b.keys for b in self.bindings}

    def check_ids(self, known: set[str]) -> None:
        """A ConfigError at the first id that is none of `known` (a typo would otherwise do nothing)."""
        for b in self.bindings:
            if b.binding_id not in known:
                close = difflib.get_close_matches(b.binding_id, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(f"{b.where}: unknown binding id {b.binding_id!r}: {hint}"
                                  "press ? in the app to see every key with its id")


@dataclass(frozen=True)
class UiSpec:
    """[ui]: terminal comfort. `mouse = false` leaves selection to the terminal (SSH); `theme` is the last one chosen."""

    mouse: bool = True
    theme: str = ""


@dataclass(frozen=True)
class RemoteSpec:
    """[remote]: the GPU boxes a run may go to and how they are reached; None = the SSH/box backend's own default."""

    hosts: tuple[str, ...] = ()  # ssh aliases offered when starting a run
    training_dir: str | None = None  # absolute path on the box (runs under models/, datasets under datasets/)
    python: str = ""  # an interpreter with the [train] extra; empty: a venv under training_dir
    ssh_config: Path | None = None  # resolved against the workspace
    known_hosts: Path | None = None  # resolved against the workspace
    connect_timeout_s: float | None = None


@dataclass(frozen=True)
class BackupSpec:
    """[backup]: where `train backup` rsyncs a remote run's adapters (from the GPU box); "" = not set."""

    host: str = ""  # an ssh alias the GPU box can reach
    path: str = ""  # folder on that host; the run's name is appended
    rsync_ssh: str = ""  # rsync's -e, as run on the GPU box


@dataclass(frozen=True)
class RecoverySpec:
    """[recovery]: a remote run's checkpoints come home as they land (`sync_checkpoints`); its box
    counts as lost after `lost_after_minutes` without SSH; `auto` recovers a lost run without asking,
    at most `max_recoveries` times (each within [budget])."""

    sync_checkpoints: bool = True
    lost_after_minutes: float = 10.0
    auto: bool = False
    max_recoveries: int = 3


@dataclass(frozen=True)
class EvalSpec:
    """[eval]: where Asar is (None: discover it), the ROM hack's symbol files (incsrc'd before
    every snippet), the per-sample timeout and the worker count (None: all cores)."""

    asar: Path | None = None  # resolved against the workspace
    symbols: tuple[Path, ...] = ()  # resolved against the workspace; each must exist
    timeout_s: float = 10.0
    jobs: int | None = None
    during_training: str = "off"  # off | after | alongside: the box evaluates a run's checkpoints by itself
    prompts: Path | None = None  # the prompt set those evals use (None: the shipped held-out set)
    samples: int = 0  # ... with K sampled answers per prompt (pass@k) besides the greedy one
    max_new_tokens: int = 256  # ... and this answer length


PROVIDER_KEYS = {
    "vast": ("base_url", "image", "disk_gb", "onstart"),
    "vultr": ("base_url", "ssh_key_id"),
    "gcp": ("base_url", "project"),
}


@dataclass
class Config:
    path: Path
    doc: TOMLDocument
    datasets_dir: Path
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    mixes: dict[str, MixSpec] = field(default_factory=dict)
    phases: dict[int, str] = field(default_factory=dict)
    model: ModelSpec = field(default_factory=ModelSpec)
    keys: KeysSpec = field(default_factory=KeysSpec)
    ui: UiSpec = field(default_factory=UiSpec)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    remote: RemoteSpec = field(default_factory=RemoteSpec)
    backup: BackupSpec = field(default_factory=BackupSpec)
    recovery: RecoverySpec = field(default_factory=RecoverySpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    providers: dict[str, ProviderSpec] = field(default_factory=lambda: {n: ProviderSpec() for n in PROVIDER_KEYS})

    @property
    def workspace(self) -> Path:
        """The folder holding config.toml: mixes/, runs/ and state.sqlite live here."""
        return self.path.parent

    @property
    def state_path(self) -> Path:
        return self.workspace / "state.sqlite"

    def table(self, name: str) -> dict:
        """A top-level table as plain values ({} when absent); anything but a table is a ConfigError."""
        raw = self.doc.unwrap().get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{self.path} [{name}]: must be a table")
        return raw

    def mix_dir(self, name: str) -> Path:
        return self.workspace / "mixes" / name

    def mix(self, name: str) -> MixSpec:
        if name not in self.mixes:
            known = ", ".join(sorted(self.mixes)) or "none"
            raise ConfigError(f"{self.path}: unknown mix '{name}' (known: {known})")
        return self.mixes[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise ConfigError(f"{self.path}: unknown dataset '{name}'")
        return self.datasets[name]

    def set_mix(self, mix: MixSpec) -> None:
        """Write a mix into the document (new or changed), keeping every comment.

        A locked mix is never rewritten (its bundle is what trained a model): save the edits
        under a new name instead.
        """
        validate_mix_values(self, mix)
        saved = self.mixes.get(mix.name)
        if saved is not None and saved.locked and saved != mix:
            raise ConfigError(f"{self.path} [mix.{mix.name}]: mix '{mix.name}' is locked and is not changed; "
                              "save the edits as a new mix")
        mixes = self.doc.get("mix")
        if mixes is None:
            mixes = tomlkit.table(is_super_table=True)
            self.doc["mix"] = mixes
        table = mixes.get(mix.name)
        if table is None:
            table = tomlkit.table()
            mixes[mix.name] = table
        datasets = tomlkit.array()
        datasets.extend(mix.datasets)
        _assign(table, "datasets", datasets, list(mix.datasets))
        _assign(table, "eval_fraction", mix.eval_fraction)
        _assign(table, "min_eval_samples", mix.min_eval_samples)
        _assign(table, "seed", mix.seed)
        if mix.optional or "optional" in table:
            _assign(table, "optional", list(mix.optional))
        self.mixes[mix.name] = mix

    def set_ui(self, key: str, value: bool | str) -> None:
        """Write one [ui] setting into the document (comments kept); `save` stores it."""
        table = self.doc.get("ui")
        if table is None:
            table = tomlkit.table()
            self.doc["ui"] = table
        _assign(table, key, value)
        self.ui = UiSpec(**{**self.ui.__dict__, key: value})

    def save(self) -> None:
        """Atomic write of the document (through a symlink to its target)."""
        atomic.write_text(self.path.resolve(), tomlkit.dumps(self.doc))


def _assign(table: Any, key: str, value: Any, plain: Any = None) -> None:
    """Set a key only when the value changed, so untouched items keep their formatting."""
    current = table.get(key)
    compare = plain if plain is not None else value
    if current is not None and _unwrap(current) == compare:
        return
    table[key] = value


def _unwrap(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def discover(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Path:
    """`--config PATH`, then `$ZELDA_TUI_CONFIG`, then `./config.toml`."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from --config)")
        return path.absolute()
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from ${ENV_VAR})")
        return path.absolute()
    path = (cwd or Path.cwd()) / DEFAULT_NAME
    if not path.is_file():
        raise ConfigError(
            f"no config.toml here ({path}); pass --config PATH, set ${ENV_VAR}, "
            "or create a demo workspace with `zelda-tui demo init DIR`"
        )
    return path.absolute()


def load(path: Path) -> Config:
    """Read and validate a config file. Every error names file:line and the key."""
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{where(path, exc.line)}: invalid TOML: {exc.args[0] if exc.args else exc}".rstrip()) from None
    return _build(path, text, doc)


def _build(path: Path, text: str, doc: TOMLDocument) -> Config:
    locate = _Locator(path, text)
    data = doc.unwrap()

    workspace = _table(data, "workspace", locate)
    _unknown_keys(workspace, ("datasets_dir",), locate, ("workspace",))
    datasets_dir_raw = _get(workspace, "datasets_dir", str, locate, ("workspace",), default="datasets")
    datasets_dir = _resolve(path.parent, datasets_dir_raw)

    model_t = _table(data, "model", locate)
    model = ModelSpec(
        name=_get(model_t, "name", str, locate, ("model",), default="model"),
        base=_get(model_t, "base", str, locate, ("model",), default=""),
        alternatives=tuple(_get_list(model_t, "alternatives", locate, ("model",))),
        max_seq_len=_get(model_t, "max_seq_len", int, locate, ("model",), default=DEFAULT_MAX_SEQ_LEN),
        tokenizer=_get(model_t, "tokenizer", str, locate, ("model",), default=""),
    )
    if model.max_seq_len <= 0:
        raise ConfigError(f"{locate('model', key='max_seq_len')}: must be > 0, got {model.max_seq_len}")
    if (problem := name_problem(model.name)) is not None:
        raise ConfigError(f"{locate('model', key='name')}: model name {model.name!r} {problem} (it names run folders)")

    config = Config(path=path, doc=doc, datasets_dir=datasets_dir, model=model,
                    budget=_budget(_table(data, "budget", locate), locate),
                    monitoring=_monitoring(_table(data, "monitoring", locate), locate),
                    remote=_remote(_table(data, "remote", locate), locate, path.parent),
                    backup=_backup(_table(data, "backup", locate), locate),
                    recovery=_recovery(_table(data, "recovery", locate), locate),
                    eval=_eval(_table(data, "eval", locate), locate, path.parent),
                    providers=_providers(_table(data, "providers", locate), locate))

    for name, table in _table(data, "datasets", locate).items():
        ctx = ("datasets", name)
        _check_name("dataset", name, ctx, locate)
        if not isinstance(table, dict):
            raise ConfigError(f"{locate('datasets', key=name)}: [datasets.{name}] must be a table with a `path`")
        raw = _get(table, "path", str, locate, ctx)
        if raw is None or not raw.strip():
            raise ConfigError(f"{locate(*ctx)}: [datasets.{name}] needs `path`")
        config.datasets[name] = DatasetSpec(
            name=name,
            path=_resolve(datasets_dir, raw),
            tags=tuple(_get_list(table, "tags", locate, ctx)),
            description=_get(table, "description", str, locate, ctx, default=""),
        )

    for name, table in _table(data, "mix", locate).items():
        ctx = ("mix", name)
        _check_name("mix", name, ctx, locate)
        if not isinstance(table, dict):
            raise ConfigError(f"{locate('mix', key=name)}: [mix.{name}] must be a table")
        datasets = _get_list(table, "datasets", locate, ctx)
        description = _get(table, "description", str, locate, ctx, default="")
        mix = MixSpec(
            name=name,
            datasets=tuple(datasets),
            eval_fraction=_get(table, "eval_fraction", (int, float), locate, ctx, default=0.02),
            min_eval_samples=_get(table, "min_eval_samples", int, locate, ctx, default=1),
            seed=_get(table, "seed", int, locate, ctx, default=42),
            optional=tuple(_get_list(table, "optional", locate, ctx)),
            description=description,
            locked=_get(table, "locked", bool, locate, ctx, default=description.lstrip().upper().startswith("LOCKED")),
        )
        validate_mix_values(config, mix, locate)
        config.mixes[name] = mix

    config.keys = _keys(_table(data, "keys", locate), locate)

    ui = _table(data, "ui", locate)
    _unknown_keys(ui, tuple(UiSpec.__dataclass_fields__), locate, ("ui",))
    config.ui = UiSpec(mouse=_get(ui, "mouse", bool, locate, ("ui",), default=True),
                       theme=_get(ui, "theme", str, locate, ("ui",), default=""))

    for key, table in _table(data, "phases", locate).items():
        ctx = ("phases", key)
        if not key.isdigit() or not isinstance(table, dict):
            raise ConfigError(f"{locate('phases', key=key)}: phases are tables named by number, e.g. [phases.0]")
        mix_name = _get(table, "mix", str, locate, ctx)
        if mix_name not in config.mixes:
            raise ConfigError(f"{locate(*ctx, key='mix')}: phase {key} names unknown mix '{mix_name}'")
        config.phases[int(key)] = mix_name
    return config


def validate_mix_values(config: Config, mix: MixSpec, locate: "_Locator | None" = None) -> None:
    """A ConfigError at the mix's first problem (`mix_problem`), for loading and for saves from the app."""
    locate = locate or _Locator(config.path, None)
    ctx = ("mix", mix.name)
    _check_name("mix", mix.name, ctx, locate)
    problem = mix_problem(config, mix)
    if problem is not None:
        key, reason = problem
        raise ConfigError(f"{locate(*ctx, key=key)}: {reason}")


def mix_problem(config: Config, mix: MixSpec) -> tuple[str, str] | None:
    """The first thing wrong with a mix's values as (key, reason), or None: the one set of checks for a
    mix read from config.toml, saved by the app, and typed into the Mix screen (which shows the reason)."""
    if not mix.datasets:
        return "datasets", f"mix '{mix.name}' needs at least one dataset (`datasets` is empty)"
    if not (0 < float(mix.eval_fraction) < 1):
        return "eval_fraction", f"eval_fraction must be between 0 and 1 (exclusive), got {mix.eval_fraction}"
    if mix.min_eval_samples < 0:
        return "min_eval_samples", f"min_eval_samples must be >= 0, got {mix.min_eval_samples}"
    seen: set[str] = set()
    for ds in mix.datasets:
        if ds in seen:
            return "datasets", f"mix '{mix.name}' lists dataset '{ds}' twice"
        seen.add(ds)
        if ds not in config.datasets:
            return "datasets", f"mix '{mix.name}' names unknown dataset '{ds}' (add a [datasets.{ds}] table)"
    for ds in mix.optional:
        if ds not in config.datasets:
            return "optional", f"mix '{mix.name}' names unknown dataset '{ds}'"
    return None


def name_problem(name: str) -> str | None:
    """Why a dataset/mix/model name cannot name a folder or file, or None when it can.

    Names become paths (mixes/<mix>/, runs/<model>_<time>/, remote dirs): a name must stay one
    plain path component, so `..`, `a/b` or `.hidden` never reach outside or hide a folder.
    """
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is not a name"
    if "/" in name or "\\" in name:
        return "contains a path separator (/ or \\)"
    if name.startswith("."):
        return "starts with a dot"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    return None


def _check_name(kind: str, name: str, ctx: tuple[str, ...], locate: "_Locator") -> None:
    problem = name_problem(name)
    if problem is not None:
        shown = ".".join(ctx[:-1] + (json.dumps(name),))
        line = locate.line(ctx, None) or locate.line(ctx[:-1], name)
        raise ConfigError(f"{where(locate.path, line, shown)}: {kind} name {name!r} {problem}; "
                          "use letters, digits, '-', '_' (it names a folder)")


# --- [budget], [monitoring], [providers] -----------------------------------------------
@overload
def _number(table: dict, key: str, locate: "_Locator", ctx: tuple[str, ...], default: float,
            low: float = ..., high: float | None = ..., low_inclusive: bool = ...) -> float: ...
@overload
def _number(table: dict, key: str, locate: "_Locator", ctx: tuple[str, ...], default: None,
            low: float = ..., high: float | None = ..., low_inclusive: bool = ...) -> float | None: ...
def _number(table: dict, key: str, locate: "_Locator", ctx: tuple[str, ...], default: float | None,
            low: float = 0.0, high: float | None = None, low_inclusive: bool = True) -> float | None:
    """A finite number in [low, high] (or (low, high] without low_inclusive); None/default when absent."""
    value = _get(table, key, (int, float), locate, ctx)
    if value is None:
        return default
    value = float(value)
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise ConfigError(f"{locate(*ctx, key=key)}: `{key}` must be a number {bound}, got {value:g}")
    return value


def _unknown_keys(table: dict, known: tuple[str, ...], locate: "_Locator", ctx: tuple[str, ...]) -> None:
    """A misspelt money or monitoring key must not silently fall back to "no limit"."""
    for key in table:
        if key not in known:
            raise ConfigError(f"{locate(*ctx, key=key)}: unknown key `{key}` (known: {', '.join(known)})")


def _budget(table: dict, locate: "_Locator") -> BudgetSpec:
    ctx = ("budget",)
    _unknown_keys(table, tuple(BudgetSpec.__dataclass_fields__), locate, ctx)
    on_idle = _get(table, "on_idle", str, locate, ctx, default=BudgetSpec.on_idle)
    if on_idle not in ON_IDLE:
        raise ConfigError(f"{locate(*ctx, key='on_idle')}: `on_idle` must be \"alert\" or \"destroy\", got {on_idle!r}")
    return BudgetSpec(
        max_total_usd=_number(table, "max_total_usd", locate, ctx, None),
        max_hourly_usd=_number(table, "max_hourly_usd", locate, ctx, None),
        max_runtime_hours=_number(table, "max_runtime_hours", locate, ctx, None, low_inclusive=False),
        on_idle=on_idle,
    )


def _monitoring(table: dict, locate: "_Locator") -> MonitoringSpec:
    ctx, d = ("monitoring",), MonitoringSpec()
    _unknown_keys(table, tuple(MonitoringSpec.__dataclass_fields__), locate, ctx)
    nvidia_smi = _get(table, "nvidia_smi", str, locate, ctx, default=d.nvidia_smi)
    if not nvidia_smi.strip():
        raise ConfigError(f"{locate(*ctx, key='nvidia_smi')}: `nvidia_smi` must name a command")
    return MonitoringSpec(
        gpu_idle_threshold_percent=_number(table, "gpu_idle_threshold_percent", locate, ctx, d.gpu_idle_threshold_percent, high=100),
        gpu_idle_alert_minutes=_number(table, "gpu_idle_alert_minutes", locate, ctx, d.gpu_idle_alert_minutes),
        gpu_idle_shutdown_minutes=_number(table, "gpu_idle_shutdown_minutes", locate, ctx, d.gpu_idle_shutdown_minutes),
        disk_warning_percent=_number(table, "disk_warning_percent", locate, ctx, d.disk_warning_percent, high=100),
        check_every_s=_number(table, "check_every_s", locate, ctx, d.check_every_s, low_inclusive=False),
        nvidia_smi=nvidia_smi,
    )


def _providers(table: dict, locate: "_Locator") -> dict[str, ProviderSpec]:
    out = {name: ProviderSpec() for name in PROVIDER_KEYS}
    for name, sub in table.items():
        ctx = ("providers", name)
        if name not in PROVIDER_KEYS:
            raise ConfigError(f"{locate(*ctx)}: unknown provider '{name}' (known: {', '.join(PROVIDER_KEYS)})")
        if not isinstance(sub, dict):
            raise ConfigError(f"{locate('providers', key=name)}: [providers.{name}] must be a table")
        _unknown_keys(sub, PROVIDER_KEYS[name], locate, ctx)
        disk_gb = _get(sub, "disk_gb", int, locate, ctx)
        if disk_gb is not None and disk_gb <= 0:
            raise ConfigError(f"{locate(*ctx, key='disk_gb')}: `disk_gb` must be > 0, got {disk_gb}")
        out[name] = ProviderSpec(
            base_url=_base_url(sub, locate, ctx),
            image=_get(sub, "image", str, locate, ctx),
            disk_gb=disk_gb,
            onstart=_get(sub, "onstart", str, locate, ctx, default=""),
            ssh_key_id=_get(sub, "ssh_key_id", str, locate, ctx, default=""),
            project=_get(sub, "project", str, locate, ctx),
        )
    return out


def _remote(table: dict, locate: "_Locator", workspace: Path) -> RemoteSpec:
    ctx = ("remote",)
    _unknown_keys(table, tuple(RemoteSpec.__dataclass_fields__), locate, ctx)
    training_dir = _get(table, "training_dir", str, locate, ctx)
    if training_dir is not None and not training_dir.startswith("/"):
        raise ConfigError(f"{locate(*ctx, key='training_dir')}: `training_dir` must be an absolute path on the box, "
                          f"got {training_dir!r}")
    return RemoteSpec(
        hosts=tuple(_get_list(table, "hosts", locate, ctx)),
        training_dir=training_dir,
        python=_get(table, "python", str, locate, ctx, default=""),
        ssh_config=_path(table, "ssh_config", locate, ctx, workspace),
        known_hosts=_path(table, "known_hosts", locate, ctx, workspace),
        connect_timeout_s=_number(table, "connect_timeout_s", locate, ctx, None, low_inclusive=False),
    )


def _backup(table: dict, locate: "_Locator") -> BackupSpec:
    ctx = ("backup",)
    _unknown_keys(table, tuple(BackupSpec.__dataclass_fields__), locate, ctx)
    return BackupSpec(**{key: _get(table, key, str, locate, ctx, default="") for key in BackupSpec.__dataclass_fields__})


def _recovery(table: dict, locate: "_Locator") -> RecoverySpec:
    ctx, d = ("recovery",), RecoverySpec()
    _unknown_keys(table, tuple(RecoverySpec.__dataclass_fields__), locate, ctx)
    most = _get(table, "max_recoveries", int, locate, ctx, default=d.max_recoveries)
    if most < 0:
        raise ConfigError(f"{locate(*ctx, key='max_recoveries')}: `max_recoveries` must be >= 0, got {most}")
    lost_after = _number(table, "lost_after_minutes", locate, ctx, d.lost_after_minutes, low_inclusive=False)
    assert lost_after is not None  # it has a default
    return RecoverySpec(sync_checkpoints=_get(table, "sync_checkpoints", bool, locate, ctx, default=d.sync_checkpoints),
                        lost_after_minutes=lost_after, auto=_get(table, "auto", bool, locate, ctx, default=d.auto),
                        max_recoveries=most)


def _eval(table: dict, locate: "_Locator", workspace: Path) -> EvalSpec:
    ctx, d = ("eval",), EvalSpec()
    _unknown_keys(table, tuple(EvalSpec.__dataclass_fields__), locate, ctx)
    raw_symbols = table.get("symbols", [])
    if isinstance(raw_symbols, str):  # one file may be written without the list
        raw_symbols = [raw_symbols]
    symbols = tuple(_resolve(workspace, s) for s in _get_list({"symbols": raw_symbols}, "symbols", locate, ctx))
    for p in symbols:
        if not p.is_file():
            raise ConfigError(f"{locate(*ctx, key='symbols')}: symbols file not found: {p}")
    timeout = _get(table, "timeout_s", (int, float), locate, ctx, default=d.timeout_s)
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"{locate(*ctx, key='timeout_s')}: `timeout_s` must be a number of seconds > 0, got {timeout!r}")
    jobs = _get(table, "jobs", int, locate, ctx)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"{locate(*ctx, key='jobs')}: `jobs` must be an integer >= 1, got {jobs!r}")
    during = _get(table, "during_training", str, locate, ctx, default=d.during_training)
    if during not in DURING_TRAINING:
        raise ConfigError(f"{locate(*ctx, key='during_training')}: `during_training` must be one of "
                          f"{', '.join(DURING_TRAINING)}, got {during!r}")
    prompts = _path(table, "prompts", locate, ctx, workspace)
    if prompts is not None and not prompts.is_file():
        raise ConfigError(f"{locate(*ctx, key='prompts')}: prompt file not found: {prompts}")
    samples = _get(table, "samples", int, locate, ctx, default=d.samples)
    tokens = _get(table, "max_new_tokens", int, locate, ctx, default=d.max_new_tokens)
    if samples < 0 or tokens < 1:
        key = "samples" if samples < 0 else "max_new_tokens"
        raise ConfigError(f"{locate(*ctx, key=key)}: `samples` must be >= 0 and `max_new_tokens` >= 1")
    return EvalSpec(asar=_path(table, "asar", locate, ctx, workspace), symbols=symbols, timeout_s=float(timeout), jobs=jobs,
                    during_training=during, prompts=prompts, samples=samples, max_new_tokens=tokens)


def _path(table: dict, key: str, locate: "_Locator", ctx: tuple[str, ...], base: Path) -> Path | None:
    """A path string resolved against `base` (~ expanded); None when absent or empty."""
    raw = _get(table, key, str, locate, ctx)
    return _resolve(base, raw) if raw else None


def _base_url(table: dict, locate: "_Locator", ctx: tuple[str, ...]) -> str | None:
    """https, or plain http to this machine only: the API key travels in every request's headers."""
    url = _get(table, "base_url", str, locate, ctx)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{locate(*ctx, key='base_url')}: `base_url` {url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"{locate(*ctx, key='base_url')}: `base_url` must be an https:// URL, got {url!r}")
    if parts.scheme == "http" and not _loopback(host):
        raise ConfigError(f"{locate(*ctx, key='base_url')}: plain http:// to {host} would send the API key in clear; "
                          "use https:// (http is allowed only to 127.0.0.1, localhost or ::1)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve(base: Path, raw: str) -> Path:
    p = Path(raw).expanduser()
    return p if p.is_absolute() else (base / p)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true/false"}


def _get(table: dict, key: str, typ: Any, locate: "_Locator", ctx: tuple[str, ...], default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        expected = "a number" if set(types) == {int, float} else " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise ConfigError(f"{locate(*ctx, key=key)}: `{key}` must be {expected}, got {type(value).__name__} {value!r}")
    return value


def _get_list(table: dict, key: str, locate: "_Locator", ctx: tuple[str, ...]) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{locate(*ctx, key=key)}: `{key}` must be a list of strings")
    return value


_KEY_NAME = re.compile(r"((ctrl|shift|alt|meta|super|hyper)\+)*[A-Za-z0-9_]+")


def _keys(table: dict, locate: "_Locator") -> KeysSpec:
    """[keys]: `"mix.build" = "f5"` (or `mix.build = "f5"`, which TOML nests): ids `scope.name`, values
    comma-separated Textual key names. Textual would take a bad one silently and the key would do nothing."""
    out: list[KeyBinding] = []
    for scope, value in table.items():
        entries = value.items() if isinstance(value, dict) else [(None, value)]
        for name, keys in entries:
            binding_id = f"{scope}.{name}" if name is not None else scope
            # `"runs.stop" = ` and `runs.stop = ` are lines of [keys]; `stop = ` one of a [keys.runs] table
            nested = name is not None and locate.line(("keys", scope), name) is not None
            ctx, key = (("keys", scope), name) if nested else (("keys",), binding_id)
            if not isinstance(keys, str):
                raise ConfigError(f"{locate(*ctx, key=key)}: key bindings are strings like \"f1\" or \"ctrl+b\", "
                                  f"got {type(keys).__name__}")
            if not re.fullmatch(r"[a-z_]+\.[a-z_.-]+", binding_id):
                raise ConfigError(f"{locate(*ctx, key=key)}: {binding_id!r} is not a binding id: ids look like "
                                  "\"mix.build\" (press ? in the app to see them)")
            parts = [k.strip() for k in keys.split(",")]
            bad = next((k for k in parts if not _KEY_NAME.fullmatch(k)), None)
            if bad is not None:
                raise ConfigError(f"{locate(*ctx, key=key)}: {bad!r} is not a key name: use names like \"f5\", "
                                  "\"ctrl+b\" or \"question_mark\", several joined by commas")
            out.append(KeyBinding(binding_id, ",".join(parts), locate(*ctx, key=key)))
    return KeysSpec(tuple(out))


def _table(data: dict, key: str, locate: "_Locator") -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{locate(key=key)}: `{key}` must be a table")
    return value


_HEADER = re.compile(r"""^\s*\[\[?\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\]"'])+?)\s*\]\]?\s*(#.*)?$""")
_KEY_PART = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'|[^.\s"']+""")


def _header_parts(header: str) -> tuple[str, ...]:
    """`mix."../datasets"` -> ("mix", "../datasets"): dots inside quotes do not split."""
    parts = []
    for raw in _KEY_PART.findall(header):
        if raw.startswith('"'):
            try:
                raw = json.loads(raw)
            except ValueError:  # a TOML-only escape (\U, \e): compare the text as written
                raw = raw[1:-1]
        elif raw.startswith("'"):
            raw = raw[1:-1]
        parts.append(raw)
    return tuple(parts)


class _Locator:
    """Finds the line of `[table] key = ...` in the original text, for error messages."""

    def __init__(self, path: Path, text: str | None) -> None:
        self.path = path
        self.lines = text.splitlines() if text is not None else None

    def __call__(self, *table: str, key: str | None = None) -> str:
        dotted = ".".join(table + ((key,) if key else ()))
        return where(self.path, self.line(table, key), dotted or None)

    def line(self, table: tuple[str, ...], key: str | None) -> int | None:
        if self.lines is None:
            return None
        current: tuple[str, ...] = ()
        header_line = None
        key_re = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=") if key else None
        for i, text in enumerate(self.lines, 1):
            m = _HEADER.match(text)
            if m:
                current = _header_parts(m.group(1))
                if current == table and header_line is None:
                    header_line = i
                    if key_re is None:
                        return i
                elif key and current == table + (key,):
                    return i
                continue
            if key_re is not None and current == table and key_re.match(text):
                return i
        return header_line
