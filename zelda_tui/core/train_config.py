"""The frozen configuration of one training run (`run.toml`), shared by the app and the trainer.

The app builds it from config.toml (model, [lora], [train], the phase's overrides, the mix)
and writes it into the run directory; the trainer program reads only this file, so a run is
reproducible and the same on a laptop and on a rented GPU box.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from . import atomic
from .errors import ConfigError, ZeldaError

# Attention projections of DeepSeek-V2 (q_proj when q_lora_rank is null, else q_a/q_b), plus the
# shared-expert and dense-MLP projections. Routed experts are opt-in (lora.target_experts).
DEFAULT_TARGETS = ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj",
                   "gate_proj", "up_proj", "down_proj")


@dataclass
class ModelSection:
    base: str = ""
    name: str = "model"
    max_seq_len: int = 4096
    tokenizer: str = ""  # a local dir/file; default: the base model's
    attn_implementation: str = "sdpa"


@dataclass
class QuantSection:
    load_in_4bit: bool = True
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    quantize_experts: bool = True  # fused 3-D expert parameters to NF4 too (bitsandbytes only does nn.Linear)


@dataclass
class LoraSection:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0  # 0 = peft's fast path (no dropout copy of each adapted input)
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    target_experts: bool = False  # LoRA on routed experts through peft target_parameters (needs dropout 0)


@dataclass
class TrainSection:
    epochs: float = 1.0
    max_steps: int = -1
    micro_batch: int = 4
    grad_accum: int = 4
    lr: float = 2e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    seed: int = 42
    logging_steps: int = 10
    eval_steps: int = 50  # evaluate every N optimizer steps
    eval_max_samples: int = 200  # at most M eval samples per dataset (the first M of its split); 0 = all
    checkpoint_every_steps: int = 50
    keep_checkpoints: int = 3
    packing: str = "by_length"  # by_length | packed | dense (PACKING_MODES)
    gradient_checkpointing: bool = True
    early_stopping_dataset: str = ""  # eval loss of this dataset decides; "" = off
    early_stopping_patience: int = 3
    device: str = "auto"  # auto | cuda | cpu
    gpus: int | str = 1  # 1, N or "all" (torchrun)
    optimizer: str = "paged_adamw_8bit"


@dataclass
class DataSection:
    mix: str = ""
    phase: int | None = None
    train_file: str = "data/train.jsonl"
    eval_file: str = "data/eval.jsonl"
    eval_sources_file: str = "data/eval_sources.txt"
    sha256: dict[str, str] = field(default_factory=dict)


DURING_TRAINING = ("off", "after", "alongside")


@dataclass
class EvalSection:
    """Evals the box runs by itself ([eval] during_training of config.toml, frozen with the run)."""

    during_training: str = "off"  # off | after (every checkpoint once training ends) | alongside (as they land)
    prompt_set: str = ""  # RUN_DIR/evals/<prompt_set>/prompts.jsonl, written when the run is created
    samples: int = 0  # sampled answers per prompt besides the greedy one
    max_new_tokens: int = 256


@dataclass
class RunConfig:
    name: str = ""
    created: str = ""
    model: ModelSection = field(default_factory=ModelSection)
    quant: QuantSection = field(default_factory=QuantSection)
    lora: LoraSection = field(default_factory=LoraSection)
    train: TrainSection = field(default_factory=TrainSection)
    data: DataSection = field(default_factory=DataSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def to_toml(self) -> str:
        doc = tomlkit.document()
        doc.add(tomlkit.comment("Frozen config of this run: the trainer reads only this file."))
        doc["name"] = self.name
        doc["created"] = self.created
        for section in SECTIONS:
            table = tomlkit.table()
            for key, value in dataclasses.asdict(getattr(self, section)).items():
                if value is not None:
                    table[key] = value
            doc[section] = table
        return tomlkit.dumps(doc)

    def save(self, run_dir: Path) -> Path:
        path = Path(run_dir) / "run.toml"
        atomic.write_text(path, self.to_toml())
        return path


# How samples become micro-batches (the attention cost of each is in README, Training):
#   by_length  one sample a row, rows of similar length batched together, right-padded: attention
#              runs causal per sample (sdpa's fast path), padding is small and not counted as tokens
#   packed     samples concatenated into max_seq_len rows, attention per document by a kernel that
#              reads the boundaries (model.attn_implementation flex_attention or flash_attention_*)
#   dense      the same packed rows under sdpa/eager: a dense block-diagonal mask over the whole
#              row (slow: kept to compare with and for runs frozen with the old `packing = true`)
PACKING_MODES = ("by_length", "packed", "dense")
LEGACY_PACKING = {True: "dense", False: "by_length"}  # run.toml files frozen before the modes existed
DEVICES = ("auto", "cuda", "cpu")

SECTIONS = {"model": ModelSection, "quant": QuantSection, "lora": LoraSection, "train": TrainSection, "data": DataSection,
            "eval": EvalSection}


def apply(section: Any, values: dict, where: str) -> Any:
    """Copy known keys into a section dataclass, checking types; unknown keys are errors."""
    known = {f.name: f for f in dataclasses.fields(section)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key `{key}` (known: {', '.join(known)})")
        current = getattr(section, key)
        if isinstance(section, TrainSection) and key == "packing" and isinstance(value, bool):
            value = LEGACY_PACKING[value]
        if current is not None and not _compatible(current, value):
            raise ConfigError(f"{where}: `{key}` must be {type(current).__name__}, got {type(value).__name__} {value!r}")
        if problem := _invalid(section, key, value):
            raise ConfigError(f"{where}: `{key}` = {value!r}: {problem}")
        setattr(section, key, value)
    return section


def _invalid(section: Any, key: str, value: Any) -> str | None:
    """Why a value cannot work (None when it can): caught when config.toml is read, not hours later on a GPU box."""
    if isinstance(section, TrainSection):
        if key == "packing" and value not in PACKING_MODES:
            return f"must be one of {', '.join(PACKING_MODES)}"
        if key == "device" and value not in DEVICES:
            return f"must be one of {', '.join(DEVICES)}"
        if key in ("eval_steps", "logging_steps", "checkpoint_every_steps", "micro_batch", "grad_accum") and value < 1:
            return "must be >= 1"
        if key == "eval_max_samples" and value < 0:
            return "must be >= 0 (0 = every eval sample)"
    if isinstance(section, EvalSection) and key == "during_training" and value not in DURING_TRAINING:
        return f"must be one of {', '.join(DURING_TRAINING)}"
    if isinstance(section, LoraSection) and key == "dropout" and not 0 <= value < 1:
        return "must be in [0, 1)"
    return None


def _compatible(current: Any, value: Any) -> bool:
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, (int, float)) and isinstance(value, (int, float)):
        return True
    if isinstance(current, (int, str)) and isinstance(value, (int, str)) and {type(current), type(value)} == {int, str}:
        return True  # gpus = 1 | "all"
    return isinstance(value, type(current))


def load_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "run.toml"
    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except FileNotFoundError:
        raise ZeldaError(f"{path}: missing (is {run_dir} a run directory?)") from None
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}:{exc.line}: invalid TOML") from None
    cfg = RunConfig(name=str(data.get("name", "")), created=str(data.get("created", "")))
    for section, cls in SECTIONS.items():
        apply(getattr(cfg, section), data.get(section, {}), f"{path} [{section}]")
    return cfg
