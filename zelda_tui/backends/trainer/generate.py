"""The generation program of an eval: `python -m zelda_tui.backends.trainer.generate RUN_DIR ...`.

A separate program (not a function the app calls) so torch stays out of the TUI and the same
command can run on the GPU box beside the trainer. It loads the base model of run.toml the
way the trainer does (4-bit NF4 when configured), formats every prompt with the model's own
chat template and generation prompt, and for each requested checkpoint (`base` = no
adapter, `checkpoint-N`, `final`) writes RUN_DIR/evals/<set>/<checkpoint>.jsonl atomically:
the greedy answer (sample 0) and K sampled answers (1..K, seeded) per prompt.

Resumable per checkpoint: a checkpoint whose answers file matches the request is skipped.
One failing checkpoint is reported and the others still run (exit code 1 at the end).
Progress goes to stdout as JSON lines (`{"event": "progress", ...}`); logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ...core import evals
from ...core.errors import ZeldaError
from ...core.train_config import load_run_config

log = logging.getLogger("zelda_tui.generate")


@dataclass
class GenerateArgs:
    run_dir: Path
    prompt_set: str
    checkpoints: list[str]
    options: evals.GenerateOptions


def emit(event: str, **values) -> None:
    sys.stdout.write(json.dumps({"event": event, **values}) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> GenerateArgs:
    p = argparse.ArgumentParser(prog="python -m zelda_tui.backends.trainer.generate")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--prompt-set", required=True, help="name of RUN_DIR/evals/<set>/ (holding prompts.jsonl)")
    p.add_argument("--checkpoints", required=True, help="comma list: base, checkpoint-N, final")
    p.add_argument("--samples", type=int, default=0, help="sampled answers per prompt (pass@k), besides the greedy one")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--device", default="", choices=["", "auto", "cuda", "cpu"])
    a = p.parse_args(argv)
    return GenerateArgs(a.run_dir.resolve(), a.prompt_set, [c for c in a.checkpoints.split(",") if c],
                        evals.GenerateOptions(a.samples, a.max_new_tokens, a.batch_size, a.seed, a.temperature, a.top_p,
                                              a.device))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    try:
        return run(args)
    except ZeldaError as exc:
        emit("error", checkpoint=None, message=str(exc))
        return 1
    except Exception as exc:  # the caller gets one readable line; the traceback goes to the log
        traceback.print_exc()
        emit("error", checkpoint=None, message=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 1


def run(args: GenerateArgs) -> int:
    cfg = load_run_config(args.run_dir)
    edir = evals.eval_dir(args.run_dir, args.prompt_set)
    prompts_path = edir / evals.PROMPTS_FILE
    if not prompts_path.is_file():
        raise ZeldaError(f"{prompts_path}: missing (the app writes it before starting the generator)")
    prompts = evals.read_eval_prompts(prompts_path)
    prompts_sha = evals.sha256_text(evals.prompts_jsonl(prompts))
    todo = []
    failed = 0
    for name in args.checkpoints:
        adapter = evals.checkpoint_dir(args.run_dir, name)
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            emit("error", checkpoint=name, message=f"{adapter}: no adapter_config.json (not a complete checkpoint)")
            failed += 1
            continue
        request = evals.generation_request(cfg.model.base, adapter, prompts_sha, args.options.samples, args.options.max_new_tokens,
                                           args.options.seed, args.options.temperature, args.options.top_p)
        path = evals.answers_path(args.run_dir, args.prompt_set, name)
        if evals.answers_complete(path, request):
            emit("skipped", checkpoint=name, path=str(path))
            continue
        todo.append((name, adapter, request, path))
    if not todo:
        return 1 if failed else 0

    try:
        import torch

        from .lora import load_adapters
        from .modeling import load_model, load_tokenizer, pick_device
    except ImportError as exc:
        raise ZeldaError(f"generating answers needs the [train] extra (pip install -e '.[train]'): {exc}") from None

    if args.options.device:
        cfg.train.device = args.options.device  # the eval's own choice wins over the run's
    device = pick_device(cfg)
    tokenizer = load_tokenizer(cfg)
    tokenizer.padding_side = "left"  # decoder-only batches: pad on the left so every prompt ends at the same place
    base, quant = load_model(cfg, device)
    base.config.use_cache = True
    base.eval()
    log.info("base %s on %s; %s", cfg.model.base, device, quant.line())
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p.user_text()}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    for name, adapter, request, path in todo:
        started = time.time()
        try:
            model = base if adapter is None else load_adapters(base, str(adapter))
            model.eval()
            answers = generate(model, tokenizer, texts, prompts, args, name, torch)
            if adapter is not None:
                base = model.unload()  # LoRA layers out again, nothing merged: the next adapter starts clean
        except Exception as exc:
            traceback.print_exc()
            emit("error", checkpoint=name, message=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            failed += 1
            continue
        header = {"run": args.run_dir.name, "prompt_set": args.prompt_set, "checkpoint": name, "step": evals.checkpoint_step(args.run_dir, name),
                  **request, "expected": len(prompts) * (1 + args.options.samples), "device": device,
                  "created": round(time.time(), 3), "elapsed_s": round(time.time() - started, 2)}
        evals.write_answers(path, header, answers)
        emit("done", checkpoint=name, path=str(path), answers=len(answers), elapsed_s=header["elapsed_s"])
    return 1 if failed else 0


def generate(model, tokenizer, texts: list[str], prompts: list[evals.Prompt], args: GenerateArgs, name: str, torch) -> list[dict]:
    """Greedy (sample 0) then K sampled answers (1..K) per prompt, in batches of prompts."""
    total = len(prompts) * (1 + args.options.samples)
    answers: list[dict] = []
    eos = tokenizer.eos_token_id
    common = {"max_new_tokens": args.options.max_new_tokens, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": eos}
    emit("progress", checkpoint=name, done=0, total=total)
    for start in range(0, len(prompts), max(1, args.options.batch_size)):
        batch = prompts[start:start + args.options.batch_size]
        enc = tokenizer(texts[start:start + args.options.batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        width = enc["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, temperature=None, top_p=None, top_k=None, **common)
        for prompt, seq in zip(batch, out):
            answers.append({"prompt_idx": prompt.idx, "sample": 0, **_decode(tokenizer, seq[width:], eos)})
        if args.options.samples:
            torch.manual_seed(args.options.seed + start)  # the same sample for the same prompt batch on a re-run
            with torch.no_grad():
                out = model.generate(**enc, do_sample=True, temperature=args.options.temperature, top_p=args.options.top_p, top_k=None,
                                     num_return_sequences=args.options.samples, **common)
            for i, seq in enumerate(out):
                prompt = batch[i // args.options.samples]
                answers.append({"prompt_idx": prompt.idx, "sample": 1 + i % args.options.samples,
                                **_decode(tokenizer, seq[width:], eos)})
        emit("progress", checkpoint=name, done=len(answers), total=total)
    answers.sort(key=lambda a: (a["prompt_idx"], a["sample"]))
    return answers


def _decode(tokenizer, new_ids, eos: int) -> dict:
    ids = new_ids.tolist()
    pad = tokenizer.pad_token_id
    finished = eos in ids
    if finished:
        ids = ids[:ids.index(eos)]
    elif pad is not None and pad != eos:
        ids = [i for i in ids if i != pad]
    return {"answer": tokenizer.decode(ids, skip_special_tokens=True).strip(), "tokens": len(ids), "truncated": not finished}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
