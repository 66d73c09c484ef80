"""From a workspace config + mix (or phase) to a frozen RunConfig and a fresh run directory.

Precedence (later wins): built-in defaults (train_config) < config.toml [model]/[quant]/[lora]/
[train] < the phase's keys in [phases.N] (everything but `mix`, applied to [train]).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from . import atomic, evals, runs
from .config import Config
from .errors import ConfigError, ZeldaError
from .mix import EVAL_SOURCES, read_metadata
from .train_config import RunConfig, apply


def choose_mix(config: Config, mix: str | None, phase: int | None) -> tuple[str, int | None]:
    if phase is not None:
        if phase not in config.phases:
            known = ", ".join(map(str, sorted(config.phases))) or "none"
            raise ConfigError(f"{config.path}: no [phases.{phase}] (phases: {known})")
        if mix and mix != config.phases[phase]:
            raise ConfigError(f"--mix {mix} conflicts with phase {phase}, which trains on '{config.phases[phase]}'")
        return config.phases[phase], phase
    if mix:
        config.mix(mix)
        phase_of = {m: p for p, m in config.phases.items()}
        return mix, phase_of.get(mix)
    if config.phases:
        last = max(config.phases)
        return config.phases[last], last
    if len(config.mixes) == 1:
        return next(iter(config.mixes)), None
    raise ConfigError(f"{config.path}: say which mix to train (--mix NAME or --phase N)")


def plan_run(config: Config, mix: str | None = None, phase: int | None = None, during_training: str | None = None,
             **overrides) -> RunConfig:
    mix_name, phase = choose_mix(config, mix, phase)
    raw = config.doc.unwrap()
    cfg = RunConfig()
    m = config.model
    cfg.model.base, cfg.model.name, cfg.model.max_seq_len = m.base, m.name, m.max_seq_len
    if m.tokenizer:
        cfg.model.tokenizer = m.tokenizer
    for section in ("quant", "lora", "train"):
        apply(getattr(cfg, section), config.table(section), f"{config.path} [{section}]")
    if phase is not None:
        phase_table = {k: v for k, v in raw.get("phases", {}).get(str(phase), {}).items() if k != "mix"}
        apply(cfg.train, phase_table, f"{config.path} [phases.{phase}]")
    apply(cfg.train, {k: v for k, v in overrides.items() if v is not None}, "command line")
    cfg.data.mix, cfg.data.phase = mix_name, phase
    apply(cfg.eval, {"during_training": during_training or config.eval.during_training,
                     "samples": config.eval.samples, "max_new_tokens": config.eval.max_new_tokens},
          "--eval-during" if during_training else f"{config.path} [eval]")
    return cfg


def create_run(config: Config, cfg: RunConfig, bundle: Path, runs_root: Path | None = None,
               now: datetime | None = None) -> Path:
    """A new run dir named <model.name>_<UTC timestamp> holding run.toml, data/ and status.json."""
    meta = read_metadata(bundle)
    root = runs_root or config.workspace / "runs"
    root.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(timezone.utc)
    name = runs.run_name(cfg.model.name, now)
    run_dir = root / name
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise ZeldaError(f"{run_dir}: a run with this name already exists (started twice in one second?)") from None
    data = run_dir / runs.DATA_DIR
    data.mkdir()
    for fname in ("train.jsonl", "eval.jsonl", EVAL_SOURCES, "metadata.json"):
        src = bundle / fname
        if not src.is_file():
            shutil.rmtree(run_dir)
            raise ZeldaError(f"{bundle}: incomplete mix bundle, {fname} missing (rebuild it with `zelda-tui mix build`)")
        try:
            os.link(src, data / fname)  # bundles are replaced, never edited: a hard link is a safe copy
        except OSError:
            shutil.copy2(src, data / fname)
    cfg.name = name
    cfg.created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    cfg.data.sha256 = {k: v for k, v in meta.get("sha256", {}).items() if k in ("train.jsonl", "eval.jsonl")}
    if cfg.eval.during_training != "off":
        try:
            cfg.eval.prompt_set = _freeze_prompts(run_dir, config.eval.prompts or evals.SHIPPED_PROMPTS)
        except ZeldaError:
            shutil.rmtree(run_dir)
            raise
    cfg.save(run_dir)
    runs.set_state(run_dir, runs.RunState.CREATED, pid=None, started=None)
    return run_dir


def _freeze_prompts(run_dir: Path, source: Path) -> str:
    """The prompt set of the evals the box runs by itself, into RUN_DIR/evals/<set>/ (its name)."""
    pf = evals.parse_prompts(source)
    atomic.write_text(evals.eval_dir(run_dir, pf.name) / evals.PROMPTS_FILE, evals.prompts_jsonl(pf.prompts))
    return pf.name
