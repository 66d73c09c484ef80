"""Trainer callbacks that write the run directory contract and handle signals.

metrics.jsonl gets one line per logging step (loss, lr, grad_norm, tokens/s, peak VRAM,
elapsed, ETA) and one per evaluation (eval_loss and eval_loss/<dataset>); status.json carries a
heartbeat refreshed by a thread, so a stalled step still shows a live process.
"""

from __future__ import annotations

import logging
import math
import resource
import signal
import threading
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ...core import runs

log = logging.getLogger("zelda_tui.trainer")


def peak_memory_gb() -> float:
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)  # CPU: peak RSS


class RunDirCallback(TrainerCallback):
    def __init__(self, run_dir: Path, status: runs.RunStatus, eval_sizes: dict[str, int], heartbeat_s: float = 5.0,
                 writes: bool = True) -> None:
        self.run_dir = run_dir
        self.writes = writes  # False on ranks other than 0: they follow the signals but write nothing
        self.status = status
        self.eval_sizes = eval_sizes
        self.started = time.time()
        self.start_step = 0
        self.start_tokens = 0
        self.last_tokens = 0
        self.stop_requested = False
        self.failed: str | None = None
        self._pending: dict[str, float] = {}  # eval losses of the current evaluation, by dataset
        self.eval_seconds = 0.0  # wall time spent evaluating since train begin (train.log shows its share)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, args=(heartbeat_s,), daemon=True)

    # --- status ----------------------------------------------------------------------
    def write_status(self, **changes) -> None:
        if not self.writes:
            return
        with self._lock:
            for k, v in changes.items():
                setattr(self.status, k, v)
            self.status.heartbeat = time.time()
            runs.write_status(self.run_dir, self.status)

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            self.write_status()

    def close(self) -> None:
        self._stop.set()

    # --- trainer events --------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()
        self.eval_seconds = 0.0
        self.start_step = state.global_step
        self.start_tokens = int(state.num_input_tokens_seen or 0)
        self.write_status(state="running", max_steps=state.max_steps, step=state.global_step)
        if self.writes and not self._beat.is_alive():
            self._beat.start()

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_requested:  # SIGTERM: save a checkpoint, then stop cleanly
            if not control.should_training_stop:
                self.write_status(state="stopping", message="SIGTERM received: saving a checkpoint")
            control.should_save = True
            control.should_training_stop = True
        if self.failed:
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or not self.writes:
            return
        elapsed = time.time() - self.started
        steps_done = state.global_step - self.start_step
        tokens = int(state.num_input_tokens_seen or 0) - self.start_tokens
        eta = (state.max_steps - state.global_step) * elapsed / steps_done if steps_done else None
        loss = float(logs["loss"])
        grad_norm = _num(logs.get("grad_norm"))  # may be NaN: json writes it as NaN
        runs.append_metric(
            self.run_dir, "train", step=state.global_step, epoch=round(state.epoch or 0, 4), loss=loss,
            lr=logs.get("learning_rate"), grad_norm=grad_norm,
            tokens_per_s=round(tokens / elapsed, 1) if elapsed > 0 else None, tokens=tokens,
            vram_peak_gb=peak_memory_gb(), elapsed_s=round(elapsed, 1), eta_s=round(eta, 1) if eta is not None else None,
        )
        self.write_status(step=state.global_step, epoch=round(state.epoch or 0, 4))
        if not math.isfinite(loss) or (grad_norm is not None and not math.isfinite(grad_norm)):
            bad = f"loss is {loss}" if not math.isfinite(loss) else f"grad norm is {grad_norm}"
            self.failed = f"{bad} at step {state.global_step}: stopping (lower lr, check data)"
            control.should_training_stop = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """The Trainer evaluates a dict of datasets one at a time: collect them, write one event."""
        metrics = metrics or {}
        if not self.writes:
            return
        for name in self.eval_sizes:
            value = metrics.get(f"eval_{name}_loss")
            if value is not None:
                self._pending[name] = float(value)
                self.eval_seconds += float(metrics.get(f"eval_{name}_runtime") or 0.0)
        if set(self._pending) != set(self.eval_sizes):
            return
        log.info("eval at step %d: %s", state.global_step, self.eval_share())
        total = sum(self.eval_sizes.values())
        combined = sum(loss * self.eval_sizes[name] for name, loss in self._pending.items()) / total
        per = {f"eval_loss/{name}": loss for name, loss in self._pending.items()}
        self._pending = {}
        runs.append_metric(self.run_dir, "eval", step=state.global_step, epoch=round(state.epoch or 0, 4),
                           eval_loss=combined, **per)

    def eval_share(self) -> str:
        wall = max(time.time() - self.started, 1e-9)
        return f"eval took {self.eval_seconds:.1f} s of {wall:.1f} s wall time so far ({self.eval_seconds / wall:.1%})"

    def on_train_end(self, args, state, control, **kwargs):
        if self.writes:
            log.info("training done: %s", self.eval_share())

    def on_save(self, args, state, control, **kwargs):
        if not self.writes:
            return
        ckpt = f"{runs.CHECKPOINTS}/checkpoint-{state.global_step}"
        best = state.best_model_checkpoint
        self.write_status(
            last_checkpoint=ckpt,
            best_checkpoint=f"{runs.CHECKPOINTS}/{Path(best).name}" if best else self.status.best_checkpoint,
            best_metric=state.best_metric,
        )
        runs.append_metric(self.run_dir, "checkpoint", step=state.global_step, path=ckpt)


def _num(value):
    try:
        return round(float(value), 6)
    except (TypeError, ValueError):
        return None


def install_sigterm(callback: RunDirCallback) -> None:
    """SIGTERM (spot/preemptible shutdown, `zelda-tui train stop`): checkpoint at the next step, exit 0."""

    def handler(signum, frame):
        # only a flag: the handler runs on the main thread wherever it was interrupted, possibly
        # inside write_status holding its lock; taking that lock here would deadlock the trainer
        callback.stop_requested = True

    signal.signal(signal.SIGTERM, handler)
