"""The demo workspace's finished run: every file a real run leaves, written without a model.

`zelda-tui demo init` calls `write_demo_run` so the Runs screen (loss / eval-loss chart, log,
throughput, checkpoints), the Leaderboard, the sample viewer and compare have something to
show on a machine without torch or a GPU. The run follows the run-dir contract exactly
(run.toml, metrics.jsonl, status.json, train.log, checkpoints/checkpoint-N/, lora_adapters/,
evals/<prompt set>/prompts.jsonl + one answers file per checkpoint); the answers are variants
of the prompts' references (verbatim, restyled, broken), which the real validator then scores
into state.sqlite (`services.evals.ingest_run`). It is labelled as demo data everywhere a
user looks: the run name, run.toml, status.json's message, train.log, the adapters' model card,
a DEMO.md beside them, and the eval refuses to "generate" for it.
"""

from __future__ import annotations

import json
import math
import random
import struct
from datetime import datetime, timezone
from pathlib import Path

from ..asm.code import extract_code
from ..core import atomic, evals, runs
from ..core.config import Config
from ..core.run_plan import plan_run

MARKER = "DEMO.md"  # in the run dir: the one test for "is this demo data"
STARTED = datetime(2026, 11, 24, 18, 0, 0, tzinfo=timezone.utc)
MAX_STEPS, LOG_EVERY, EVAL_EVERY, CKPT_EVERY = 1200, 10, 200, 400
SECONDS_PER_STEP = 6.1
TOKENS_PER_S = 9870.0
VRAM_PEAK_GB = 18.4
SAMPLES = 2  # sampled answers per prompt (pass@k) besides the greedy one
NOTE = ("DEMO DATA written by `zelda-tui demo init`: no model was trained and no answer was generated; "
        "metrics, checkpoints and answers are made up so every screen can be tried without torch or a GPU.")
# answer kinds and, per checkpoint, how often each comes up: the base model is worst, training helps
KINDS = ("verbatim", "restyled", "extra_nop", "syntax_error", "unresolved", "empty")
WEIGHTS = {
    evals.BASE: (0.04, 0.04, 0.12, 0.40, 0.20, 0.20),
    "checkpoint-400": (0.25, 0.10, 0.15, 0.25, 0.15, 0.10),
    "checkpoint-800": (0.40, 0.12, 0.15, 0.15, 0.13, 0.05),
    "checkpoint-1200": (0.52, 0.12, 0.12, 0.10, 0.11, 0.03),
}
# eval loss of each dataset relative to the mean (gold sets are easier than the enriched one)
DATASET_OFFSETS = {
    "vultr_train_full": 0.0, "vultr_gold_full": -0.05, "oos_enriched_v1_normalized_notodo": 0.09,
    "asm_gold_asar_pass_20260102": -0.08, "nerv_watcher_v1": 0.14, "expert_router_v1": 0.21,
}


def run_name(config: Config) -> str:
    """`<model.name>-demo_<timestamp>`: 'demo' in the name, on every screen and in every command."""
    return runs.run_name(f"{config.model.name}-demo", STARTED)


def is_demo_run(run_dir: Path) -> bool:
    return (Path(run_dir) / MARKER).is_file()


def write_demo_run(config: Config, seed: int = 0) -> Path:
    """A completed run under the workspace's runs/ with eval answers for the shipped prompt set."""
    name = run_name(config)
    run_dir = config.workspace / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / MARKER, f"# {name}\n\n{NOTE}\n")
    cfg = plan_run(config, max_steps=MAX_STEPS, eval_steps=EVAL_EVERY, checkpoint_every_steps=CKPT_EVERY,
                   logging_steps=LOG_EVERY, keep_checkpoints=3)
    cfg.name, cfg.created = name, f"{STARTED:%Y-%m-%dT%H:%M:%SZ}"
    atomic.write_text(run_dir / "run.toml", f"# {NOTE}\n{cfg.to_toml()}")
    rng = random.Random(seed)
    metrics, log = _training(cfg.data.mix, rng)
    atomic.write_text(run_dir / runs.METRICS, "".join(json.dumps(m, separators=(",", ":")) + "\n" for m in metrics))
    atomic.write_text(run_dir / runs.TRAIN_LOG, "".join(line + "\n" for line in log))
    adapter_config = json.dumps({"base_model_name_or_path": cfg.model.base, "peft_type": "LORA", "r": cfg.lora.r,
                                 "lora_alpha": cfg.lora.alpha, "lora_dropout": cfg.lora.dropout,
                                 "target_modules": cfg.lora.targets, "task_type": "CAUSAL_LM", "demo": NOTE}, indent=2)
    for step in range(CKPT_EVERY, MAX_STEPS + 1, CKPT_EVERY):
        ckpt = run_dir / runs.CHECKPOINTS / f"checkpoint-{step}"
        _adapter_files(ckpt, adapter_config)
        atomic.write_text(ckpt / runs.CHECKPOINT_DONE, json.dumps({"global_step": step, "demo": NOTE}) + "\n")
    final = run_dir / runs.ADAPTERS
    _adapter_files(final, adapter_config)
    last = next(m for m in reversed(metrics) if m["event"] == "eval")
    atomic.write_text(final / "README.md", f"# {name}\n\n{NOTE}\n\n- base: `{cfg.model.base}`\n- mix: `{cfg.data.mix}`\n"
                                           f"- final eval loss: {last['eval_loss']}\n")
    started = STARTED.timestamp()
    finished = started + MAX_STEPS * SECONDS_PER_STEP
    runs.write_status(run_dir, runs.RunStatus(
        state="completed", host="demo", started=started, heartbeat=finished, step=MAX_STEPS, max_steps=MAX_STEPS,
        epoch=3.0, last_checkpoint=f"{runs.CHECKPOINTS}/checkpoint-{MAX_STEPS}",
        message="demo data: no model was trained (see DEMO.md)", finished=finished))
    write_demo_answers(run_dir, cfg.model.base, seed)
    return run_dir


def _adapter_files(path: Path, adapter_config: str) -> None:
    """adapter_config.json + a valid safetensors file holding no tensors (only a demo note)."""
    header = json.dumps({"__metadata__": {"demo": NOTE}}).encode()
    header += b" " * (-len(header) % 8)
    atomic.write_text(path / "adapter_config.json", adapter_config + "\n")
    atomic.write_bytes(path / "adapter_model.safetensors", struct.pack("<Q", len(header)) + header)


def _training(mix: str, rng: random.Random) -> tuple[list[dict], list[str]]:
    """metrics.jsonl events and train.log lines of a 1200-step run, as the trainer writes them."""
    t0 = STARTED.timestamp()
    stamp = lambda s: datetime.fromtimestamp(t0 + s, timezone.utc).strftime("%Y-%m-%d %H:%M:%S,000")  # noqa: E731
    log = [f"{stamp(0)} INFO {NOTE}", f"{stamp(0)} INFO mix {mix}: {MAX_STEPS} steps, eval every {EVAL_EVERY}"]
    metrics: list[dict] = []
    tokens = 0
    for step in range(LOG_EVERY, MAX_STEPS + 1, LOG_EVERY):
        elapsed = step * SECONDS_PER_STEP
        loss = 0.35 + 1.6 / (1 + step / 60) + rng.gauss(0, 0.015)
        warm = 36
        lr = 2e-4 * (step / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / (MAX_STEPS - warm))))
        rate = TOKENS_PER_S + rng.gauss(0, 60)
        tokens += int(rate * LOG_EVERY * SECONDS_PER_STEP)
        epoch = round(3.0 * step / MAX_STEPS, 4)
        metrics.append({"t": round(t0 + elapsed, 3), "event": "train", "step": step, "epoch": epoch, "loss": round(loss, 4),
                        "lr": lr, "grad_norm": round(abs(rng.gauss(0.42, 0.05)), 6), "tokens_per_s": round(rate, 1),
                        "tokens": tokens, "vram_peak_gb": VRAM_PEAK_GB, "elapsed_s": round(elapsed, 1),
                        "eta_s": round((MAX_STEPS - step) * SECONDS_PER_STEP, 1)})
        log.append(f"{stamp(elapsed)} INFO step {step}/{MAX_STEPS} loss {loss:.4f} lr {lr:.2e} "
                   f"{rate:,.0f} tok/s vram {VRAM_PEAK_GB} GB")
        if step % EVAL_EVERY == 0:
            mean = loss + 0.06
            per = {f"eval_loss/{ds}": round(mean + off, 4) for ds, off in DATASET_OFFSETS.items()}
            metrics.append({"t": round(t0 + elapsed + 30, 3), "event": "eval", "step": step, "epoch": epoch,
                            "eval_loss": round(mean, 4), **per})
            log.append(f"{stamp(elapsed + 30)} INFO eval at step {step}: loss {mean:.4f}")
        if step % CKPT_EVERY == 0:
            path = f"{runs.CHECKPOINTS}/checkpoint-{step}"
            metrics.append({"t": round(t0 + elapsed + 40, 3), "event": "checkpoint", "step": step, "path": path})
            log.append(f"{stamp(elapsed + 40)} INFO saved {path}")
    end = MAX_STEPS * SECONDS_PER_STEP + 60
    metrics.append({"t": round(t0 + end, 3), "event": "status", "state": "completed"})
    log.append(f"{stamp(end)} INFO done: adapters in lora_adapters/")
    return metrics, log


def write_demo_answers(run_dir: Path, model: str, seed: int = 0) -> str:
    """prompts.jsonl and an answers file per checkpoint (base, each checkpoint) for the shipped
    prompt set, with the header the generator writes; returns the prompt set's name."""
    pf = evals.parse_prompts(evals.SHIPPED_PROMPTS)
    text = evals.prompts_jsonl(pf.prompts)
    atomic.write_text(evals.eval_dir(run_dir, pf.name) / evals.PROMPTS_FILE, text)
    opts = evals.GenerateOptions(samples=SAMPLES)
    for ckpt, step in evals.eval_checkpoints(run_dir):
        request = evals.generation_request(model, evals.checkpoint_dir(run_dir, ckpt), evals.sha256_text(text),
                                           opts.samples, opts.max_new_tokens, opts.seed, opts.temperature, opts.top_p)
        rows = []
        for p in pf.prompts:
            for sample in range(1 + SAMPLES):
                pick = random.Random(f"{seed}:{ckpt}:{p.idx}:{sample}")
                kind = pick.choices(KINDS, WEIGHTS.get(ckpt, WEIGHTS["checkpoint-1200"]))[0]
                answer = demo_answer(p.reference or "", kind)
                rows.append({"prompt_idx": p.idx, "sample": sample, "answer": answer,
                             "tokens": len(answer) // 3, "truncated": False})
        header = {"run": Path(run_dir).name, "prompt_set": pf.name, "checkpoint": ckpt, "step": step, **request,
                  "expected": len(rows), "device": "demo", "created": STARTED.timestamp() + MAX_STEPS * SECONDS_PER_STEP,
                  "elapsed_s": 0.0, "demo": NOTE}
        evals.write_answers(evals.answers_path(run_dir, pf.name, ckpt), header, rows)
    return pf.name


def demo_answer(reference: str, kind: str) -> str:
    """One made-up model answer of a kind (see KINDS) from the prompt's reference answer."""
    code = extract_code(reference).strip("\n")
    if kind == "empty" or not code:
        return "" if kind == "empty" else reference
    lines = code.split("\n")
    body = [i for i, ln in enumerate(lines) if ln.startswith((" ", "\t")) and ln.strip() and not ln.strip().startswith(";")]
    if kind == "verbatim":
        return reference
    if kind == "restyled":  # same code after normalisation: mnemonics lower-case, comments dropped
        lines = [ln.split(";")[0].rstrip() if i in body else ln for i, ln in enumerate(lines)]
        lines = [_lower_mnemonic(ln) if i in body else ln for i, ln in enumerate(lines)]
    elif kind == "extra_nop":  # still assembles, no longer the reference's code
        at = body[-1] if body else len(lines)
        lines.insert(at, "    NOP")
    elif kind == "syntax_error" and body:
        i = body[len(body) // 2]
        lines[i] = lines[i].replace(lines[i].split()[0], lines[i].split()[0] + "Q", 1)
    elif kind == "unresolved":
        lines.insert(body[0] if body else 0, "    JSL Demo_UndefinedRoutine")
    return "Here is the routine:\n\n```asm\n" + "\n".join(lines) + "\n```\n"


def _lower_mnemonic(line: str) -> str:
    head = line.lstrip()
    indent = line[: len(line) - len(head)]
    word, _, rest = head.partition(" ")
    return indent + word.lower() + (" " + rest if rest else "")
