"""The trainer entry point: run.toml in, run directory out (see zelda_tui.core.runs)."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ...core import runs
from ...core.errors import ZeldaError
from ...core.train_config import RunConfig, load_run_config

log = logging.getLogger("zelda_tui.trainer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zelda_tui.backends.trainer")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    run_dir = args.run_dir.resolve()
    dist = Distributed.from_env()
    status = runs.read_status(run_dir) or runs.RunStatus()
    # under torchrun the launcher (our parent) is the one to signal: it forwards SIGTERM to every rank
    status.pid = os.getppid() if "TORCHELASTIC_RUN_ID" in os.environ else os.getpid()
    status.state, status.message = "starting", ""
    status.started = status.started or time.time()
    status.heartbeat = time.time()
    if not (run_dir / runs.RUN_TOML).is_file():
        print(f"error: {run_dir / runs.RUN_TOML}: missing (is {run_dir} a run directory?)", file=sys.stderr)
        return 2
    cfg = None
    try:
        if dist.is_main:
            runs.write_status(run_dir, status)
        cfg = load_run_config(run_dir)
        return train(run_dir, cfg, status, dist)
    except ZeldaError as exc:
        return _fail(run_dir, status, str(exc), dist)
    except Exception as exc:  # the run must end in a readable status, whatever broke
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return _fail(run_dir, status, f"disk full under {run_dir} ({exc.strerror}): free some space, then "
                         f"`zelda-tui train resume {run_dir.name}` (it goes on from the last complete checkpoint)", dist)
        traceback.print_exc()
        torch = sys.modules.get("torch")  # not loaded yet: whatever broke was no CUDA allocation
        if torch is not None and isinstance(exc, torch.OutOfMemoryError):
            total = torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else 0.0
            message = f"CUDA out of memory: {oom_advice(cfg, total)} — {message}"
        return _fail(run_dir, status, message, dist)


def oom_advice(cfg: RunConfig | None, gpu_total_gb: float) -> str:
    """The estimator's smallest change that fits: halve micro_batch, then max_seq_len."""
    from ...core import estimate as est

    generic = "lower train.micro_batch or model.max_seq_len (`zelda-tui estimate` shows the peak of a setting)"
    if cfg is None or gpu_total_gb <= 0:
        return generic
    try:
        arch = est.lookup(cfg.model.base)
    except ZeldaError:
        return generic
    micro, seq = cfg.train.micro_batch, cfg.model.max_seq_len
    while seq >= 512:
        while micro >= 1:
            peak = est.estimate_vram(arch, micro_batch=micro, seq_len=seq, **est.vram_options(cfg)).total_gb
            if peak <= gpu_total_gb * (1 - est.TIGHT_MARGIN):
                change = []
                if micro != cfg.train.micro_batch:
                    change.append(f"train.micro_batch = {micro} (grad_accum x{cfg.train.micro_batch // micro} keeps the batch)")
                if seq != cfg.model.max_seq_len:
                    change.append(f"model.max_seq_len = {seq}")
                if not change:
                    return f"the estimator puts this setting at {peak:.1f} of {gpu_total_gb:.0f} GiB; " + generic
                return f"try {' and '.join(change)}: estimated peak {peak:.1f} of {gpu_total_gb:.0f} GiB"
            micro //= 2
        micro, seq = cfg.train.micro_batch, seq // 2
    return generic


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun launch (rank 0 alone writes the run directory)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Distributed":
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _fail(run_dir: Path, status: runs.RunStatus, message: str, dist: Distributed) -> int:
    log.error(message)
    if not dist.is_main:
        return 1
    status.state, status.message, status.finished, status.heartbeat = "failed", message, time.time(), time.time()
    try:
        runs.write_status(run_dir, status)
        runs.append_metric(run_dir, "status", state="failed", message=message)
    except OSError as exc:  # a full disk cannot take the failure either; the atomic write left the old status whole
        print(f"error: could not record the failure in {run_dir}: {exc.strerror or exc}", file=sys.stderr, flush=True)
    return 1


def _clear_incomplete_checkpoints(run_dir: Path) -> None:
    """A checkpoint dir without trainer_state.json was cut off mid-save: move it out of the way."""
    root = run_dir / runs.CHECKPOINTS
    if not root.is_dir():
        return
    complete = {p for _, p in runs.checkpoints(run_dir)}
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and p not in complete:
            log.warning("ignoring incomplete checkpoint %s", p.name)
            shutil.rmtree(p, ignore_errors=True)


def train(run_dir: Path, cfg: RunConfig, status: runs.RunStatus, dist: Distributed) -> int:
    from . import versions

    stack = versions.check()  # before the heavy imports: a wrong version is one line, not a traceback
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, TrainerCallback, set_seed

    from .batching import ZeldaSFTTrainer, batching
    from .callbacks import RunDirCallback, install_sigterm
    from .data import load_splits, tokenize
    from .lora import apply_lora, resolve_targets, trainable_parameters
    from .modeling import load_model, load_tokenizer, pick_device

    log.info("versions: %s", versions.line(stack))
    batching(cfg)  # a packing mode the attention backend cannot do stops here, before anything heavy
    device = pick_device(cfg)
    batching(cfg, device)  # ... or the device (flex_attention has no backward on the CPU)
    gpu_name = torch.cuda.get_device_name(dist.local_rank) if device == "cuda" else "cpu"
    log.info("run %s: base %s on %s (%s) x %d", cfg.name, cfg.model.base, device, gpu_name, dist.world_size)
    if dist.is_main:  # the measured tokens/s of a finished run feeds the estimator, keyed by GPU
        runs.append_metric(run_dir, "hardware", device=device, gpu=gpu_name, gpus=dist.world_size,
                           seq_len=cfg.model.max_seq_len, micro_batch=cfg.train.micro_batch)
    tokenizer = load_tokenizer(cfg)
    train_records, eval_groups = load_splits(run_dir, cfg.data.train_file, cfg.data.eval_file, cfg.data.eval_sources_file)
    train_ds = Dataset.from_list([tokenize(tokenizer, r) for r in train_records])
    eval_ds = {name: Dataset.from_list([tokenize(tokenizer, r) for r in eval_subset(recs, cfg.train.eval_max_samples)])
               for name, recs in eval_groups.items()}
    log.info("data: %d train samples; eval every %d steps on %s", len(train_ds), cfg.train.eval_steps,
             ", ".join(f"{k} {len(eval_ds[k])} of {len(v)}" for k, v in eval_groups.items()))
    log.info("batches: train.packing = %s, attention %s", cfg.train.packing, cfg.model.attn_implementation)

    # the seed before the model: the LoRA A matrices are drawn when the adapter is attached, before the
    # Trainer seeds itself; unseeded, two runs of one config (a run and its re-run) start apart
    set_seed(cfg.train.seed)
    model, quant = load_model(cfg, device, dist.local_rank)
    log.info(quant.line())
    plan = resolve_targets(model, cfg.lora)
    model.config.use_cache = False
    model = apply_lora(model, cfg.lora, plan)
    trainable, total = trainable_parameters(model)
    log.info("LoRA r=%d alpha=%d dropout=%s on %d modules %s%s", cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout,
             len(plan.modules), json.dumps(plan.by_target), f" + {len(plan.parameters)} expert parameters" if plan.parameters else "")
    for name in plan.modules:
        log.info("  adapted: %s", name)
    log.info("trainable parameters: %s of %s (%.3f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / max(total, 1))
    if cfg.train.gradient_checkpointing:
        # not prepare_model_for_kbit_training: it upcasts every non-quantised weight to fp32
        model.enable_input_require_grads()

    t = cfg.train
    early = bool(t.early_stopping_dataset)
    if early and t.early_stopping_dataset not in eval_ds:
        raise ZeldaError(f"train.early_stopping_dataset '{t.early_stopping_dataset}' has no eval records "
                         f"(eval datasets: {', '.join(eval_ds)})")
    args = sft_config(cfg, run_dir / runs.CHECKPOINTS, device, dist)
    status.max_steps = None
    callback = RunDirCallback(run_dir, status, {k: len(v) for k, v in eval_ds.items()}, writes=dist.is_main)
    callbacks: list[TrainerCallback] = [callback]
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    trainer = ZeldaSFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                              processing_class=tokenizer, callbacks=callbacks)
    install_sigterm(callback)
    if dist.is_main:  # a spot VM's preemption notice: SIGTERM at once, so the loss is at most a step (#17)
        from . import spot_notice

        spot_notice.start(status.pid or os.getpid())
    _clear_incomplete_checkpoints(run_dir)
    resume = runs.latest_checkpoint(run_dir)
    if resume:
        log.info("resuming from %s", resume.name)
        runs.append_metric(run_dir, "status", state="resumed", checkpoint=resume.name)
    if dist.is_main and cfg.eval.during_training != "off":
        start_eval_worker(run_dir, cfg)
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        callback.close()
    if callback.failed:
        raise ZeldaError(callback.failed)
    if not dist.is_main:
        return 0
    if callback.stop_requested:
        callback.write_status(state="stopped", message="stopped by SIGTERM after a checkpoint", finished=time.time())
        runs.append_metric(run_dir, "status", state="stopped")
        log.info("stopped cleanly; restart the run to resume from %s", callback.status.last_checkpoint)
        return 0
    _save_adapters(run_dir, cfg, trainer, tokenizer, callback, stack)
    callback.write_status(state="completed", finished=time.time(), message="adapters in lora_adapters/")
    runs.append_metric(run_dir, "status", state="completed")
    log.info("done: adapters in %s", run_dir / runs.ADAPTERS)
    return 0


def start_eval_worker(run_dir: Path, cfg: RunConfig) -> int | None:
    """The generator that evaluates this run's checkpoints on this machine by itself ([eval]
    during_training): detached like the trainer (it outlives it to finish the last checkpoints),
    events appended to evals/<set>/generate.events, its log to generate.log. A generator of an
    earlier start of this run that is still busy holds the set's lock: this one waits for it."""
    import subprocess
    import threading

    from ...core import evals

    edir = evals.eval_dir(run_dir, cfg.eval.prompt_set)
    if not cfg.eval.prompt_set or not (edir / evals.PROMPTS_FILE).is_file():
        log.warning("eval.during_training = %s but the run has no prompt set: no eval while training",
                    cfg.eval.during_training)
        return None
    command = [sys.executable, "-m", "zelda_tui.backends.trainer.generate", str(run_dir), "--prompt-set",
               cfg.eval.prompt_set, "--follow", cfg.eval.during_training, "--poll-s", str(EVAL_POLL_S),
               "--samples", str(cfg.eval.samples), "--max-new-tokens", str(cfg.eval.max_new_tokens)]
    with open(edir / evals.EVENTS_FILE, "ab") as events, open(edir / evals.GENERATE_LOG, "ab") as logfile:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=events, stderr=logfile, cwd=run_dir,
                                start_new_session=True)
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    log.info("eval of every checkpoint %s (pid %d, prompt set %s; log in %s)",
             "as it lands" if cfg.eval.during_training == "alongside" else "once training ends", proc.pid,
             cfg.eval.prompt_set, edir / evals.GENERATE_LOG)
    return proc.pid


EVAL_POLL_S = 5.0  # how often the eval worker looks for new checkpoints


def eval_subset(records: list[dict], limit: int) -> list[dict]:
    """The first `limit` eval records of a dataset (0 = all): the same samples at every evaluation."""
    return records[:limit] if limit > 0 else records


def sft_config(cfg: RunConfig, output_dir: Path, device: str, dist: Distributed):
    """trl's SFTConfig for a run (the GPU bench builds ours with this too)."""
    import torch
    from trl import SFTConfig

    from .batching import batching

    t = cfg.train
    early = bool(t.early_stopping_dataset)
    use_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # the configured effective batch (micro_batch x grad_accum sequences a step) is kept on N GPUs
    if t.grad_accum % dist.world_size:
        raise ZeldaError(f"train.grad_accum ({t.grad_accum}) must be a multiple of the number of processes "
                         f"({dist.world_size}) to keep the effective batch")
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=t.micro_batch,
        per_device_eval_batch_size=t.micro_batch,
        gradient_accumulation_steps=t.grad_accum // dist.world_size,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.lr,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps",
        eval_steps=t.checkpoint_every_steps if early else t.eval_steps,
        save_strategy="steps",
        save_steps=t.checkpoint_every_steps,
        save_total_limit=t.keep_checkpoints,
        load_best_model_at_end=early,
        metric_for_best_model=f"eval_{t.early_stopping_dataset}_loss" if early else None,
        greater_is_better=False if early else None,
        bf16=use_bf16,
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        max_length=cfg.model.max_seq_len,
        completion_only_loss=True,
        optim=t.optimizer if device == "cuda" else "adamw_torch",
        logging_nan_inf_filter=False,  # a NaN loss must show (and stop the run), not be averaged away
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        ddp_backend=("nccl" if device == "cuda" else "gloo") if dist.world_size > 1 else None,
        **batching(cfg).sft_kwargs(),
    )


def _save_adapters(run_dir: Path, cfg: RunConfig, trainer, tokenizer, callback, stack: dict[str, str]) -> None:
    """lora_adapters/ with the tokenizer and a model card, written beside and renamed into place."""
    final = run_dir / runs.ADAPTERS
    tmp = run_dir / f".{runs.ADAPTERS}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    metrics = runs.read_metrics(run_dir)
    last_eval: dict = next((m for m in reversed(metrics) if m.get("event") == "eval"), {})
    last_train: dict = next((m for m in reversed(metrics) if m.get("event") == "train"), {})
    card = [
        f"# {cfg.name}", "",
        f"LoRA adapters for `{cfg.model.base}` trained by zelda-tui.", "",
        f"- mix: `{cfg.data.mix}`" + (f" (phase {cfg.data.phase})" if cfg.data.phase is not None else ""),
        *[f"- sha256 {name}: `{digest}`" for name, digest in sorted(cfg.data.sha256.items())],
        f"- LoRA: r={cfg.lora.r}, alpha={cfg.lora.alpha}, dropout={cfg.lora.dropout}, targets={', '.join(cfg.lora.targets)}",
        f"- train: epochs={cfg.train.epochs}, max_steps={cfg.train.max_steps}, micro_batch={cfg.train.micro_batch}, "
        f"grad_accum={cfg.train.grad_accum}, lr={cfg.train.lr}, scheduler={cfg.train.scheduler}, "
        f"max_seq_len={cfg.model.max_seq_len}, seed={cfg.train.seed}",
        f"- quantisation: {cfg.quant.quant_type} 4-bit={cfg.quant.load_in_4bit}, experts 4-bit={cfg.quant.quantize_experts}",
        f"- final train loss: {last_train.get('loss')}; final eval loss: {last_eval.get('eval_loss')}",
        *[f"- {k}: {v}" for k, v in last_eval.items() if k.startswith("eval_loss/")],
        f"- best checkpoint: {callback.status.best_checkpoint or 'n/a (no early stopping)'}",
        f"- batches: packing={cfg.train.packing}, attention={cfg.model.attn_implementation}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in stack.items())}",
        "",
    ]
    (tmp / "README.md").write_text("\n".join(card), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
