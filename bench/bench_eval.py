"""Eval generation: one base load for every checkpoint, against one generator process per checkpoint.

    .venv/bin/python bench/bench_eval.py [--checkpoints 4] [--prompts 16] [--reps 3]   # CPU, tiny model
    .venv/bin/python bench/bench_eval.py --dry                          # a few tiny sizes (tests/trainer/test_bench_eval.py)
    .venv/bin/python bench/bench_eval.py --model full --device cuda     # GPU box: full-size random weights (~31 GB disk)

Both variants run the real generator program (`python -m zelda_tui.backends.trainer.generate
RUN_DIR --prompt-set S --checkpoints ...`) on the same run dir, prompts and options:

  ours       one process for `base,checkpoint-1,...,checkpoint-N`: the base is loaded once and
             each adapter is loaded onto it and unloaded again (peft)
  baseline   one process per checkpoint: what loading the base for each checkpoint costs
             (interpreter and imports included, as a fresh process pays them)

The run dir is what a real run leaves: run.toml (train_config.RunConfig, defaults: 4-bit NF4
base, LoRA r16 on the default targets), checkpoints/checkpoint-K/ with adapter_config.json,
adapter_model.safetensors and trainer_state.json, evals/<set>/prompts.jsonl (the first
`--prompts` of the shipped demo prompts). The adapters are peft LoRA on the model's own module
names with random A and B (seeded by K; B is not zero), so every checkpoint answers differently.
They are written from the model's config on the meta device: no weights are loaded to make them.

Time is the wall clock around each generator process; the generator's own `done` events give
each checkpoint's elapsed_s (the first one of a process includes its base load, which its log
states apart). Variants alternate (baseline, ours, ...) for `--reps` repetitions; every
repetition writes into its own prompt set, so nothing is skipped as already answered.

The script compares the answers of every run with the first baseline run (greedy and seeded
samples should not depend on how many checkpoints a process evaluated) and lists what differs.
On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit weight for its CPU kernel at the layer's
first forward; a LoRA checkpoint evaluated after the base ran in the same process then gets logits
about one bf16 step away from a fresh process's (measured: max 0.008), which flips a greedy token
now and then on the random tiny model. With `--dry` the answers are identical (the test checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._harness import loadavg, machine  # noqa: E402
from zelda_tui.core import evals, runs  # noqa: E402
from zelda_tui.core.train_config import RunConfig  # noqa: E402

VARIANTS = ("baseline", "ours")
LOAD_LINE = re.compile(r" base .* on (\S+) in ([0-9.]+) s;")
COLUMNS = ("variant", "processes", "base loads", "total s", "min–max", "start-up s", "load s", "generate s",
           "s / checkpoint", "answers", "answers/s", "tokens/s", "speed-up")


@dataclass
class Process:
    """One generator process: its wall time, base load and per-checkpoint `done` events."""

    wall_s: float
    load_s: float
    done: dict[str, dict]


@dataclass
class Rep:
    variant: str
    processes: list[Process] = field(default_factory=list)
    answers: dict[str, list[dict]] = field(default_factory=dict)  # checkpoint -> answers as written

    @property
    def wall_s(self) -> float:
        return sum(p.wall_s for p in self.processes)

    @property
    def load_s(self) -> float:
        return sum(p.load_s for p in self.processes)

    @property
    def elapsed_s(self) -> float:
        return sum(d["elapsed_s"] for p in self.processes for d in p.done.values())

    @property
    def n_answers(self) -> int:
        return sum(d["answers"] for p in self.processes for d in p.done.values())

    @property
    def tokens(self) -> int:
        return sum(a["tokens"] for answers in self.answers.values() for a in answers)


# --- the run dir ------------------------------------------------------------------------------


def demo_texts(n: int = 200) -> list[str]:
    """Text to train the tiny tokenizer on: demo records cut short (as the trainer tests do)."""
    from zelda_tui.demo.data import iter_demo_records

    return [r["instruction"][:120] + "\n" + r.get("input", "")[:80] + "\n" + r["output"][:240]
            for r in iter_demo_records("asm_gold_asar_pass_20260102", n, 3)]


def model_dir(model: str, work: Path, device: str) -> tuple[Path, str]:
    """(base model dir, tokenizer dir or "" for the model's own) for --model tiny | full | PATH."""
    from tests.trainer.tiny import build_tiny_model, build_tokenizer

    if model == "tiny":
        return build_tiny_model(work / "tiny-deepseek-v2", demo_texts()), ""
    if model == "full":  # DeepSeek-Coder-V2-Lite with random weights, hub layout; a stand-in chat tokenizer
        from bench.bench_train_gpu import write_model

        write_model(work / "model", "full", device)
        build_tokenizer(work / "tokenizer", demo_texts())
        return work / "model", str(work / "tokenizer")
    path = Path(model).resolve()
    if not (path / "config.json").is_file():
        raise SystemExit(f"--model {model}: not tiny, full or a model dir with config.json")
    return path, ""


def write_checkpoints(run_dir: Path, cfg: RunConfig, n: int) -> list[str]:
    """checkpoints/checkpoint-1..n: peft LoRA adapters of the run's targets, random A and B."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from zelda_tui.backends.trainer.lora import apply_lora, resolve_targets

    config = AutoConfig.from_pretrained(cfg.model.base)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    peft_model = apply_lora(model, cfg.lora, resolve_targets(model, cfg.lora))
    lora_config = peft_model.peft_config["default"]
    lora_config.base_model_name_or_path = cfg.model.base
    shapes = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(peft_model).items()}
    names = []
    for step in range(1, n + 1):
        out = run_dir / runs.CHECKPOINTS / f"checkpoint-{step}"
        out.mkdir(parents=True)
        gen = torch.Generator().manual_seed(step)
        weights = {}
        for key, shape in sorted(shapes.items()):  # A ~ 1/sqrt(fan_in) (peft's scale), B small but not zero
            scale = shape[-1] ** -0.5 if ".lora_A." in key else 0.05
            weights[key] = (torch.randn(shape, generator=gen) * scale).contiguous()
        save_file(weights, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
        lora_config.save_pretrained(str(out))
        (out / runs.CHECKPOINT_DONE).write_text(json.dumps({"global_step": step, "log_history": []}))
        names.append(out.name)
    return names


def make_run(work: Path, base: Path, tokenizer: str, device: str, n_checkpoints: int) -> tuple[Path, list[str]]:
    run_dir = work / "runs" / "bench-eval"
    run_dir.mkdir(parents=True)
    cfg = RunConfig(name=run_dir.name, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    cfg.model.base, cfg.model.tokenizer, cfg.train.device = str(base), tokenizer, device
    cfg.save(run_dir)
    return run_dir, [evals.BASE] + write_checkpoints(run_dir, cfg, n_checkpoints)


def write_prompt_set(run_dir: Path, name: str, n: int) -> None:
    """evals/<name>/prompts.jsonl as `eval run` writes it: the first n shipped demo prompts."""
    from zelda_tui.core import atomic

    prompts = evals.parse_prompts(evals.SHIPPED_PROMPTS).prompts[:n]
    atomic.write_text(evals.eval_dir(run_dir, name) / evals.PROMPTS_FILE, evals.prompts_jsonl(prompts))


# --- running the generator --------------------------------------------------------------------


def generator(run_dir: Path, prompt_set: str, names: list[str], opts: evals.GenerateOptions) -> Process:
    cmd = [sys.executable, "-m", "zelda_tui.backends.trainer.generate", str(run_dir), "--prompt-set", prompt_set,
           "--checkpoints", ",".join(names), *opts.argv()]
    started = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    done = {e["checkpoint"]: e for e in events if e["event"] == "done"}
    if res.returncode != 0 or set(done) != set(names):
        errors = [e.get("message", "") for e in events if e["event"] == "error"]
        raise SystemExit(f"generator failed for {names} (exit {res.returncode}): {errors or res.stderr[-2000:]}")
    load = LOAD_LINE.search(res.stderr)
    return Process(wall, float(load.group(2)) if load else 0.0, done)


def run_variant(variant: str, run_dir: Path, prompt_set: str, prompts: int, names: list[str],
                opts: evals.GenerateOptions) -> Rep:
    write_prompt_set(run_dir, prompt_set, prompts)
    rep = Rep(variant)
    batches = [names] if variant == "ours" else [[name] for name in names]
    for batch in batches:
        rep.processes.append(generator(run_dir, prompt_set, batch, opts))
    for name in names:
        rep.answers[name] = evals.read_answers(evals.answers_path(run_dir, prompt_set, name))[1]
    return rep


# --- the report ------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def rows(reps: dict[str, list[Rep]], n_checkpoints: int) -> list[dict]:
    """One summary per variant (medians over repetitions); speed_up = baseline time / its time."""
    base_total = median([r.wall_s for r in reps["baseline"]])
    out = []
    for variant in VARIANTS:
        runs_ = reps[variant]
        total = median([r.wall_s for r in runs_])
        load = median([r.load_s for r in runs_])
        elapsed = median([r.elapsed_s for r in runs_])
        answers = runs_[0].n_answers
        out.append({
            "variant": variant, "processes": len(runs_[0].processes), "base_loads": len(runs_[0].processes),
            "total_s": round(total, 2), "min_s": round(min(r.wall_s for r in runs_), 2),
            "max_s": round(max(r.wall_s for r in runs_), 2), "startup_s": round(total - elapsed, 2),
            "load_s": round(load, 2), "generate_s": round(elapsed - load, 2),
            "s_per_checkpoint": round(total / n_checkpoints, 2), "answers": answers,
            "answers_per_s": round(answers / total, 3), "tokens_per_s": round(median([r.tokens for r in runs_]) / total, 1),
            "speed_up": round(base_total / total, 2), "reps": len(runs_),
        })
    return out


def table(summary: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    for r in summary:
        cells = [r["variant"], r["processes"], r["base_loads"], f"{r['total_s']:.2f}", f"{r['min_s']:.2f}–{r['max_s']:.2f}",
                 f"{r['startup_s']:.2f}", f"{r['load_s']:.2f}", f"{r['generate_s']:.2f}", f"{r['s_per_checkpoint']:.2f}",
                 r["answers"], f"{r['answers_per_s']:.2f}", f"{r['tokens_per_s']:.1f}", f"{r['speed_up']:.2f}x"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def per_checkpoint(reps: dict[str, list[Rep]], names: list[str]) -> str:
    """Each checkpoint's elapsed_s as the generator reports it (median over repetitions)."""
    lines = ["| checkpoint | ours elapsed_s | baseline elapsed_s | baseline process wall s |", "|---|---:|---:|---:|"]
    for name in names:
        ours = median([p.done[name]["elapsed_s"] for r in reps["ours"] for p in r.processes if name in p.done])
        base = [(p.done[name]["elapsed_s"], p.wall_s) for r in reps["baseline"] for p in r.processes if name in p.done]
        lines.append(f"| {name} | {ours:.2f} | {median([b[0] for b in base]):.2f} | {median([b[1] for b in base]):.2f} |")
    return "\n".join(lines)


def differences(reps: dict[str, list[Rep]]) -> list[str]:
    """Where any repetition of either variant answered otherwise than the first baseline run:
    'VARIANT-REP CHECKPOINT: G greedy + S sampled of N' (empty: the same answers everywhere)."""
    def key(a: dict) -> tuple:
        return a["prompt_idx"], a["sample"], a["answer"], a["tokens"]

    first = reps["baseline"][0].answers
    out = []
    for variant in VARIANTS:
        for i, rep in enumerate(reps[variant], 1):
            for name, answers in rep.answers.items():
                differ = [a for a, b in zip(answers, first[name]) if key(a) != key(b)]
                if differ:
                    greedy = sum(1 for a in differ if a["sample"] == 0)
                    out.append(f"{variant}-{i} {name}: {greedy} greedy + {len(differ) - greedy} sampled of {len(answers)}")
    return out


def adapters_change_answers(rep: Rep) -> int:
    """How many checkpoints answer differently from the base (a random adapter should)."""
    base = [a["answer"] for a in rep.answers[evals.BASE]]
    return sum(1 for name, answers in rep.answers.items() if name != evals.BASE and [a["answer"] for a in answers] != base)


# --- driver ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU, one repetition (the test runs it)")
    parser.add_argument("--model", default="tiny", help="tiny | full (random DeepSeek-Coder-V2-Lite) | a local HF model dir")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--checkpoints", type=int, default=4, help="adapters besides the base")
    parser.add_argument("--prompts", type=int, default=16, help="the first P shipped demo prompts")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2, help="sampled answers per prompt besides the greedy one")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, help="append one JSON line per variant")
    parser.add_argument("--work", type=Path, help="keep the model and run dir here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.dry:
        args.model, args.device, args.checkpoints, args.prompts = "tiny", "cpu", 2, 2
        args.max_new_tokens, args.batch_size, args.samples, args.reps = 4, 2, 1, 1
    if min(args.checkpoints, args.prompts, args.max_new_tokens, args.batch_size, args.reps) < 1 or args.samples < 0:
        parser.error("--checkpoints, --prompts, --max-new-tokens, --batch-size and --reps must be >= 1, --samples >= 0")
    opts = evals.GenerateOptions(samples=args.samples, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                 device=args.device)

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        base, tokenizer = model_dir(args.model, work, args.device)
        run_dir, names = make_run(work, base, tokenizer, args.device, args.checkpoints)
        print(f"model {args.model} ({base}), {args.checkpoints} checkpoints, run dir ready in "
              f"{time.perf_counter() - started:.1f} s; {machine()}", file=sys.stderr, flush=True)
        reps: dict[str, list[Rep]] = {v: [] for v in VARIANTS}
        for i in range(args.reps):
            for variant in VARIANTS:
                rep = run_variant(variant, run_dir, f"{variant}-{i + 1}", args.prompts, names, opts)
                reps[variant].append(rep)
                print(f"  rep {i + 1}/{args.reps} {variant:<9} {rep.wall_s:8.2f} s  load {rep.load_s:6.2f} s  "
                      f"{rep.n_answers} answers  load average {loadavg()}", file=sys.stderr, flush=True)
        summary = rows(reps, len(names))
        differ = differences(reps)
        identical = not differ
        changed = adapters_change_answers(reps["ours"][0])
    print(f"eval generation: {len(names)} checkpoints (base + {args.checkpoints}), {args.prompts} prompts x "
          f"(1 greedy + {args.samples} sampled), max_new_tokens {args.max_new_tokens}, batch {args.batch_size}, "
          f"{args.device}, model {args.model}; median of {args.reps}; load average {loadavg()}")
    print()
    print(table(summary))
    print()
    print(per_checkpoint(reps, names))
    print()
    print(f"answers identical in both variants: {'yes' if identical else 'NO (' + '; '.join(differ) + ')'}; "
          f"checkpoints answering differently from the base: {changed} of {args.checkpoints}")
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            for row in summary:
                fh.write(json.dumps({**row, "model": args.model, "device": args.device, "checkpoints": len(names),
                                     "prompts": args.prompts, "samples": args.samples,
                                     "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                                     "identical": identical, "date": time.strftime("%Y-%m-%d")}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
