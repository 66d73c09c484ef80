"""Training throughput: the plain peer recipe beside our trainer, same data, same tokens per step.

    .venv/bin/python bench/bench_train_gpu.py [--out bench_train.jsonl]        # one H100: < 8 min
    .venv/bin/python bench/bench_train_gpu.py --dry                            # tiny config on CPU: < 60 s (a test runs it)
    .venv/bin/python bench/bench_train_gpu.py --model tiny --device cpu --seq-len 4096 --micro-batch 4 \\
        --steps 3 --warmup 1 --variants ours,ours-dense                        # the CPU figures in bench/README.md

The model is DeepSeek-Coder-V2-Lite from the config kept in reference/deepseek-coder-v2-lite/
(15.7 B parameters) with random weights, written as safetensors shards in the hub checkpoint's
per-expert layout (`mlp.experts.N.gate_proj.weight`, ...), so loading merges them into the fused
3-D experts and our load-time expert quantiser runs as on the real checkpoint. `--model tiny`
shrinks the same config (2 layers, 8 experts, hidden 64). Every sample is `--seq-len` random tokens
(the first tenth prompt, masked), so every variant trains `micro_batch x seq_len` real tokens a step.

Variants, each in a fresh process (peaks are its own; `--dry` runs them in this process):
  plain           trl SFTTrainer + peft `all-linear` r16 (dropout 0) + bnb NF4 through
                  from_pretrained (the fused experts stay bf16), no packing, sdpa
  ours            our trainer with its defaults (train.packing = by_length, experts NF4)
  ours-packed     train.packing = packed with model.attn_implementation = flex_attention
  ours-dense      train.packing = dense (the old default: packed rows under a dense sdpa mask)

Per variant one JSON line: real tokens/s and median step time after `--warmup` steps, peak
allocated / reserved GiB while loading and while training apart (CUDA; on CPU the process's peak
RSS), MFU = 6 x active params x tokens/s / 989 TFLOP/s (H100 bf16 dense), adapted modules and
trainable parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REFERENCE_CONFIG = REPO / "reference" / "deepseek-coder-v2-lite" / "config.json"
VARIANTS = ("plain", "ours", "ours-packed", "ours-dense")
H100_BF16_FLOPS = 989e12
TINY = {"hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 2, "n_routed_experts": 8, "num_experts_per_tok": 2,
        "kv_lora_rank": 64, "qk_nope_head_dim": 64, "qk_rope_head_dim": 64, "v_head_dim": 64, "vocab_size": 512,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
SHARD_BYTES = 4 << 30


# --- the model directory: config, random weights in the hub's per-expert layout, a tokenizer ------------


def model_config(size: str) -> dict:
    config = json.loads(REFERENCE_CONFIG.read_text())
    config.pop("auto_map", None)  # transformers' own DeepseekV2, never remote code
    if size == "tiny":
        config.update(TINY)
    return config


def active_parameters(config: dict, total: int) -> int:
    """Parameters a token passes through: all but the routed experts it is not sent to."""
    moe_layers = config["num_hidden_layers"] - config.get("first_k_dense_replace", 0)
    per_expert = 3 * config["hidden_size"] * config["moe_intermediate_size"]
    return total - moe_layers * (config["n_routed_experts"] - config["num_experts_per_tok"]) * per_expert


def write_model(out: Path, size: str, device: str) -> dict:
    """config.json, random bf16 weights as shards in the hub layout, and a stand-in tokenizer."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models
    from transformers import AutoModelForCausalLM, DeepseekV2Config, PreTrainedTokenizerFast

    config = model_config(size)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(DeepseekV2Config.from_dict(config))
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape):
        return (torch.randn(*shape, generator=gen, device=device, dtype=torch.bfloat16) * 0.02).cpu()

    shards: list[dict] = [{}]
    sizes = [0]

    def put(name: str, tensor) -> None:
        if sizes[-1] + tensor.numel() * 2 > SHARD_BYTES and shards[-1]:
            shards.append({})
            sizes.append(0)
        shards[-1][name] = tensor.contiguous()
        sizes[-1] += tensor.numel() * 2

    total = 0
    for name, p in meta.named_parameters():
        total += p.numel()
        if name.endswith("experts.gate_up_proj"):  # [E, 2I, H] -> per expert gate_proj, up_proj [I, H]
            prefix, (experts, two_i, hidden) = name.removesuffix("gate_up_proj"), p.shape
            for e in range(experts):
                put(f"{prefix}{e}.gate_proj.weight", rand(two_i // 2, hidden))
                put(f"{prefix}{e}.up_proj.weight", rand(two_i // 2, hidden))
        elif name.endswith("experts.down_proj"):  # [E, H, I] -> per expert down_proj [H, I]
            prefix = name.removesuffix("down_proj")
            for e in range(p.shape[0]):
                put(f"{prefix}{e}.down_proj.weight", rand(*p.shape[1:]))
        elif "norm" in name:
            put(name, torch.ones(p.shape, dtype=torch.bfloat16))
        else:
            put(name, rand(*p.shape))
    index = {"metadata": {"total_size": sum(sizes)}, "weight_map": {}}
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        index["weight_map"].update({k: fname for k in shard})
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    eos = "<｜end▁of▁sentence｜>"
    tok = Tokenizer(models.WordLevel({"<｜begin▁of▁sentence｜>": config["bos_token_id"], eos: config["eos_token_id"]},
                                     unk_token=eos))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=eos).save_pretrained(str(out))
    return {"total_params": total, "active_params": active_parameters(config, total)}


def samples(config: dict, n: int, seq_len: int) -> list[dict]:
    import torch

    gen = torch.Generator().manual_seed(1)
    prompt = seq_len // 10
    return [{"input_ids": [config["bos_token_id"]] + torch.randint(2, config["vocab_size"], (seq_len - 1,), generator=gen).tolist(),
             "completion_mask": [0] * prompt + [1] * (seq_len - prompt)} for _ in range(n)]


# --- one variant -----------------------------------------------------------------------------------


def peaks(device: str) -> tuple[float, float]:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB: the process's peak so far
    return rss, rss


def run_variant(variant: str, model_dir: Path, args, info: dict) -> dict:
    import torch
    from transformers import TrainerCallback

    device = args.device
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if variant == "plain":
        trainer, adapted, trainable = _plain(model_dir, args)
    else:
        trainer, adapted, trainable = _ours(variant, model_dir, args)
    load_s = time.perf_counter() - started
    load_alloc, load_reserved = peaks(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, targs, state, control, **kwargs):
            if device == "cuda":
                torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))

    clock = Clock()
    trainer.add_callback(clock)
    begin = time.perf_counter()
    trainer.train()
    marks = [(begin, 0)] + clock.marks
    timed = marks[args.warmup:]
    seconds = timed[-1][0] - timed[0][0]
    tokens = timed[-1][1] - timed[0][1]
    step_times = [b[0] - a[0] for a, b in zip(timed, timed[1:])]
    tps = tokens / seconds if seconds > 0 else 0.0
    train_alloc, train_reserved = peaks(device)
    return {
        "variant": variant, "device": device, "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "model": args.model, "seq_len": args.seq_len, "micro_batch": args.micro_batch,
        "tokens_per_step": args.seq_len * args.micro_batch, "steps_timed": len(step_times),
        "tokens_per_s": round(tps, 1), "step_s": round(statistics.median(step_times), 3) if step_times else None,
        "load_s": round(load_s, 1), "load_peak_allocated_gib": round(load_alloc, 2),
        "load_peak_reserved_gib": round(load_reserved, 2), "train_peak_allocated_gib": round(train_alloc, 2),
        "train_peak_reserved_gib": round(train_reserved, 2),
        "mfu": round(6 * info["active_params"] * tps / H100_BF16_FLOPS, 4),
        "adapted_modules": adapted, "trainable_params": trainable,
        "versions": _versions(), "date": time.strftime("%Y-%m-%d"),
    }


def _versions() -> dict:
    from zelda_tui.backends.trainer.versions import installed

    return installed()


def _dataset(model_dir: Path, args):
    from datasets import Dataset

    config = json.loads((model_dir / "config.json").read_text())
    return Dataset.from_list(samples(config, args.micro_batch * (args.steps + 1), args.seq_len))


def _plain(model_dir: Path, args):
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    cuda = args.device == "cuda"
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.bfloat16, attn_implementation="sdpa", device_map={"": 0} if cuda else "cpu",
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                               bnb_4bit_compute_dtype=torch.bfloat16))
    model.config.use_cache = False
    sft = SFTConfig(output_dir=str(args.work / "plain"), per_device_train_batch_size=args.micro_batch,
                    gradient_accumulation_steps=1, max_steps=args.steps, learning_rate=2e-4, logging_steps=1,
                    bf16=cuda, gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
                    max_length=args.seq_len, packing=False, completion_only_loss=True, save_strategy="no",
                    optim="paged_adamw_8bit" if cuda else "adamw_torch", include_num_input_tokens_seen="non_padding",
                    report_to=[], disable_tqdm=True, dataloader_num_workers=0)
    # dropout 0: peft 0.21 turns all-linear into target_parameters on the fused experts too, which refuse dropout
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=sft, train_dataset=_dataset(model_dir, args), peft_config=lora,
                         processing_class=AutoTokenizer.from_pretrained(str(model_dir)))
    adapted = sum(1 for _, m in trainer.model.named_modules() if hasattr(m, "lora_A") and len(m.lora_A))
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return trainer, adapted, trainable


def _ours(variant: str, model_dir: Path, args):
    from transformers import AutoTokenizer

    from zelda_tui.backends.trainer.batching import ZeldaSFTTrainer, batching
    from zelda_tui.backends.trainer.lora import apply_lora, resolve_targets, trainable_parameters
    from zelda_tui.backends.trainer.modeling import load_model
    from zelda_tui.backends.trainer.program import Distributed, sft_config
    from zelda_tui.core.train_config import RunConfig

    cfg = RunConfig(name=f"bench-{variant}")
    cfg.model.base, cfg.model.max_seq_len = str(model_dir), args.seq_len
    cfg.train.micro_batch, cfg.train.grad_accum, cfg.train.max_steps = args.micro_batch, 1, args.steps
    cfg.train.logging_steps, cfg.train.eval_steps = 1, 10**9
    cfg.train.checkpoint_every_steps, cfg.train.device = 10**9, args.device
    if variant == "ours-packed":
        cfg.train.packing, cfg.model.attn_implementation = "packed", "flex_attention"
    elif variant == "ours-dense":
        cfg.train.packing = "dense"
    batching(cfg, args.device)  # the same start check as a run
    model, _ = load_model(cfg, args.device)
    model.config.use_cache = False
    plan = resolve_targets(model, cfg.lora)
    model = apply_lora(model, cfg.lora, plan)
    if cfg.train.gradient_checkpointing:
        model.enable_input_require_grads()
    sft = sft_config(cfg, args.work / variant, args.device, Distributed())
    sft.save_strategy, sft.eval_strategy = "no", "no"
    trainer = ZeldaSFTTrainer(model=model, args=sft, train_dataset=_dataset(model_dir, args),
                              processing_class=AutoTokenizer.from_pretrained(str(model_dir)))
    return trainer, len(plan.modules) + len(plan.parameters), trainable_parameters(model)[0]


# --- driver ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="tiny config on the CPU, all variants in this process")
    parser.add_argument("--model", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing (compile, allocator)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("bench_train.jsonl"))
    parser.add_argument("--model-dir", type=Path, help="reuse a written model dir")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dry:
        args.model, args.device, args.seq_len, args.micro_batch, args.steps, args.warmup = "tiny", "cpu", 128, 2, 2, 1
    variants = [v for v in args.variants.split(",") if v]
    if args.device == "cpu" and "ours-packed" in variants:  # flex_attention has no backward on the CPU
        print("ours-packed left out: torch's flex_attention trains on CUDA only", file=sys.stderr)
        variants.remove("ours-packed")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        args.work = Path(tmp)
        if args.child:  # one variant in this fresh process
            print(json.dumps(run_variant(args.child, args.model_dir, args, json.loads(args.info))), flush=True)
            return 0
        model_dir = args.model_dir or args.work / "model"
        started = time.perf_counter()
        info = write_model(model_dir, args.model, args.device) if not args.model_dir else \
            {"total_params": 0, "active_params": 0}
        print(f"model {args.model}: {info['total_params'] / 1e9:.3f}B parameters ({info['active_params'] / 1e9:.3f}B active), "
              f"written in {time.perf_counter() - started:.1f} s to {model_dir}", file=sys.stderr, flush=True)
        rows = []
        for variant in variants:
            if args.dry:
                row = run_variant(variant, model_dir, args, info)
            else:
                cmd = [sys.executable, __file__, "--child", variant, "--model-dir", str(model_dir), "--info", json.dumps(info),
                       "--model", args.model, "--device", args.device, "--seq-len", str(args.seq_len),
                       "--micro-batch", str(args.micro_batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
                done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                if done.returncode != 0:
                    row = {"variant": variant, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
                else:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
