"""config.toml: discovery, typed view, validation with file:line errors, comment-keeping edits.

The TOML document (tomlkit) is the source of truth; the dataclasses are a validated view of
it. Edits go through `Config.set_mix` etc., which change the document in place (comments and
order survive) and `Config.save` writes it atomically.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.toml_document import TOMLDocument

from . import atomic
from .errors import ConfigError, where

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


@dataclass(frozen=True)
class ModelSpec:
    name: str = "model"
    base: str = ""
    alternatives: tuple[str, ...] = ()
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    tokenizer: str = ""


@dataclass
class Config:
    path: Path
    doc: TOMLDocument
    datasets_dir: Path
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    mixes: dict[str, MixSpec] = field(default_factory=dict)
    phases: dict[int, str] = field(default_factory=dict)
    model: ModelSpec = field(default_factory=ModelSpec)
    keymap: dict[str, str] = field(default_factory=dict)  # [keys] binding id -> keys (TUI remapping)

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
        """Write a mix into the document (new or changed), keeping every comment."""
        validate_mix_values(self, mix)
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

    config = Config(path=path, doc=doc, datasets_dir=datasets_dir, model=model)

    for name, table in _table(data, "datasets", locate).items():
        ctx = ("datasets", name)
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
        if not isinstance(table, dict):
            raise ConfigError(f"{locate('mix', key=name)}: [mix.{name}] must be a table")
        datasets = _get_list(table, "datasets", locate, ctx)
        if not datasets:
            raise ConfigError(f"{locate(*ctx, key='datasets')}: mix '{name}' needs a non-empty `datasets` list")
        mix = MixSpec(
            name=name,
            datasets=tuple(datasets),
            eval_fraction=_get(table, "eval_fraction", (int, float), locate, ctx, default=0.02),
            min_eval_samples=_get(table, "min_eval_samples", int, locate, ctx, default=1),
            seed=_get(table, "seed", int, locate, ctx, default=42),
            optional=tuple(_get_list(table, "optional", locate, ctx)),
            description=_get(table, "description", str, locate, ctx, default=""),
        )
        validate_mix_values(config, mix, locate)
        config.mixes[name] = mix

    for binding_id, keys in _table(data, "keys", locate).items():
        if not isinstance(keys, str):
            raise ConfigError(f"{locate('keys', key=binding_id)}: key bindings are strings like \"f1\" or \"ctrl+b\"")
        config.keymap[binding_id] = keys

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
    """Checks shared by loading and by edits from the app (so the app cannot save a bad mix)."""
    locate = locate or _Locator(config.path, None)
    ctx = ("mix", mix.name)
    if not (0 < float(mix.eval_fraction) < 1):
        raise ConfigError(f"{locate(*ctx, key='eval_fraction')}: eval_fraction must be between 0 and 1 (exclusive), got {mix.eval_fraction}")
    if mix.min_eval_samples < 0:
        raise ConfigError(f"{locate(*ctx, key='min_eval_samples')}: min_eval_samples must be >= 0, got {mix.min_eval_samples}")
    seen: set[str] = set()
    for ds in mix.datasets:
        if ds in seen:
            raise ConfigError(f"{locate(*ctx, key='datasets')}: mix '{mix.name}' lists dataset '{ds}' twice")
        seen.add(ds)
        if ds not in config.datasets:
            raise ConfigError(f"{locate(*ctx, key='datasets')}: mix '{mix.name}' names unknown dataset '{ds}' (add a [datasets.{ds}] table)")
    for ds in mix.optional:
        if ds not in config.datasets:
            raise ConfigError(f"{locate(*ctx, key='optional')}: mix '{mix.name}' names unknown dataset '{ds}'")


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
        expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise ConfigError(f"{locate(*ctx, key=key)}: `{key}` must be {expected}, got {type(value).__name__} {value!r}")
    return value


def _get_list(table: dict, key: str, locate: "_Locator", ctx: tuple[str, ...]) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{locate(*ctx, key=key)}: `{key}` must be a list of strings")
    return value


def _table(data: dict, key: str, locate: "_Locator") -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{locate(key=key)}: `{key}` must be a table")
    return value


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


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
                current = tuple(part.strip().strip("\"'") for part in m.group(1).split("."))
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
