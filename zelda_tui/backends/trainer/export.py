"""The export program: `python -m zelda_tui.backends.trainer.export RUN_DIR --checkpoint C [--gguf TYPES]`.

A child process like the eval generator (torch stays out of the app; the same command runs on
a GPU box). For one adapter (`final` = lora_adapters/, or `checkpoint-N`) it writes
RUN_DIR/export/<checkpoint>/ (layout in backends.export_runner):

- **merged**: the base loaded in bf16 — never the 4-bit model the adapter was trained on, whose
  rounding would be baked into every weight — with the adapter merged (peft merge_and_unload),
  saved as sharded safetensors with the tokenizer, chat template and a model card. transformers
  5 holds DeepSeek-V2's routed experts fused (one 3-D tensor a layer) and writes them back per
  expert on save; the tensor names saved are checked against the base checkpoint's, because
  llama.cpp's converter and every tool that reads the base expect exactly those.
- **verified by running it**: the saved model is loaded again and its next-token logits on a
  few held-out prompts (the run's eval split, rendered with the chat template) are compared with
  the base + adapter unmerged; its greedy answers are kept for the GGUF comparison.
- **GGUF** (optional): llama.cpp's own converter to f16/bf16, llama.cpp's quantiser for the other
  types, each file loaded with llama-cpp-python and its greedy chat answers compared with the
  merged model's.

Disk and memory are checked before anything heavy, everything is written beside and renamed
into place, and export.json says what was made from what. Progress goes to stdout as JSON
lines; logs go to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core import atomic, evals, locks
from ...core.errors import ZeldaError
from ...core.train_config import RunConfig, load_run_config
from .. import export_runner as layout
from .data import read_jsonl, to_messages
from .generate import emit

log = logging.getLogger("zelda_tui.export")
SHARD = "5GB"  # the hub's usual shard size for bf16 checkpoints
PROMPTS = 4  # held-out prompts the verification runs
LOGIT_TOLERANCE = 0.02  # of the largest |logit|: bf16 rounding of merged weights stays well inside
# ... or of how far the adapter moves the logits, whichever is larger: on a model with small logits (a
# tiny random one) bf16 rounding over many layers can pass 2% of the largest, while a merge that lost
# the adapter (or applied half of it) differs by all (half) of its effect
EFFECT_SHARE = 0.1
DISK_MARGIN = 1.05
MEMORY_MARGIN = 1.2  # the model plus activations, the tokenizer, torch itself


@dataclass
class ExportArgs:
    run_dir: Path
    checkpoint: str
    gguf: list[str] = field(default_factory=list)
    device: str = ""
    llama_cpp: Path | None = None
    gguf_pre: str = ""
    max_new_tokens: int = 32
    scores: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> ExportArgs:
    p = argparse.ArgumentParser(prog=f"python -m {layout.MODULE}")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--checkpoint", required=True, help="final or checkpoint-N")
    p.add_argument("--gguf", default="", help=f"comma list of {', '.join(layout.GGUF_TYPES)}")
    p.add_argument("--device", default="", choices=["", "auto", "cuda", "cpu"])
    p.add_argument("--llama-cpp", type=Path, help="llama.cpp source dir holding convert_hf_to_gguf.py")
    p.add_argument("--gguf-pre", default="", help="llama.cpp pre-tokenizer name for a tokenizer its converter does not know")
    p.add_argument("--max-new-tokens", type=int, default=32, help="greedy tokens per prompt for the answer comparison")
    p.add_argument("--scores", default="{}", help="eval scores for the card (JSON: prompt set -> summary)")
    a = p.parse_args(argv)
    types = [t for t in a.gguf.lower().split(",") if t]
    return ExportArgs(a.run_dir.resolve(), a.checkpoint, types, "" if a.device == "auto" else a.device, a.llama_cpp,
                      a.gguf_pre, a.max_new_tokens, json.loads(a.scores))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    try:
        run(args)
        return 0
    except ZeldaError as exc:
        emit("error", message=str(exc))
        return 1
    except Exception as exc:  # the caller gets one readable line; the traceback goes to the log
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return 1


def run(args: ExportArgs) -> dict[str, Any]:
    cfg = load_run_config(args.run_dir)
    adapter = evals.checkpoint_dir(args.run_dir, args.checkpoint)
    if adapter is None or not (adapter / "adapter_config.json").is_file():
        raise ZeldaError(f"{adapter or args.checkpoint}: no adapter_config.json (not a complete checkpoint)")
    unknown = [t for t in args.gguf if t not in layout.GGUF_TYPES]
    if unknown:
        raise ZeldaError(f"--gguf: unknown type {unknown[0]!r} (known: {', '.join(layout.GGUF_TYPES)})")
    out = layout.export_dir(args.run_dir, args.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with locks.exclusive(Path(layout.lock_path(args.run_dir, args.checkpoint))):  # one export of a checkpoint at a time (here or on its box)
            return _export(args, cfg, adapter, out)
    except locks.Busy as exc:
        raise ZeldaError(f"an export of {args.run_dir.name} {args.checkpoint} is already running (PID {exc.pid})") from None


def _export(args: ExportArgs, cfg: RunConfig, adapter: Path, out: Path) -> dict[str, Any]:
    merged_dir = out / layout.MERGED
    signature = evals.adapter_signature(adapter)
    record = layout.read_record(args.run_dir, args.checkpoint) or {}
    reuse = (record.get("adapter") == signature and bool((record.get("merged") or {}).get("ok"))
             and (merged_dir / "config.json").is_file())
    if not reuse:
        record = {"run": args.run_dir.name, "checkpoint": args.checkpoint,
                  "step": evals.checkpoint_step(args.run_dir, args.checkpoint), "base": cfg.model.base,
                  "adapter": signature, "mix": cfg.data.mix, "phase": cfg.data.phase, "data_sha256": cfg.data.sha256,
                  "merged": None, "gguf": {}}
    record["eval_scores"] = args.scores
    plan = layout.gguf_plan(args.gguf) if args.gguf else []
    if plan:
        _check_gguf_tools(args)

    from . import versions

    try:
        import torch  # noqa: F401  (the [train] stack, before anything is promised)

        from .modeling import load_tokenizer, model_parameters
    except ImportError as exc:
        raise ZeldaError(f"exporting needs the [train] extra (pip install -e '.[train]'): {exc}") from None
    record["versions"] = {**versions.installed(), **_gguf_versions(args, plan)}

    emit("progress", step="checking disk and memory")
    params = model_parameters(cfg.model.base)
    merged_bytes = 0 if reuse else params * 2
    gguf_bytes = int(sum(layout.GGUF_TYPES[t][1] * params for t in plan))
    check_disk(out, merged_bytes, gguf_bytes)
    device = choose_device(args.device, params * 2)
    record["device"] = device

    if reuse:
        emit("progress", step="merged model already exported for this adapter: reused")
    else:
        record["merged"] = None
        record["gguf"] = {}
        _write_record(out, record)  # what was there before no longer describes what is being written
        tokenizer = load_tokenizer(cfg)
        prompts = held_out_prompts(args.run_dir, cfg)
        tmp, record["merged"] = merge(cfg, adapter, out, tokenizer, prompts, device, args.max_new_tokens)
        _write_card(tmp, record)
        put_in_place(tmp, merged_dir)
        _write_record(out, record)
        emit("merged", path=str(merged_dir), **_summary(record["merged"]))
    if plan:
        from . import gguf

        assert args.llama_cpp is not None  # _check_gguf_tools
        for kind in plan:
            record["gguf"][kind] = gguf.export(args.llama_cpp, args.gguf_pre, record, out, kind, plan[0],
                                               args.max_new_tokens)
            _write_record(out, record)
            _write_card(merged_dir, record)
    _write_card(merged_dir, record)
    _write_record(out, record)
    emit("done", path=str(out), record=record)
    return record


def _summary(merged: dict[str, Any]) -> dict[str, Any]:
    return {k: merged[k] for k in ("max_abs_diff", "tolerance", "top1_agreement", "adapter_effect", "ok", "bytes")}


def _write_record(out: Path, record: dict[str, Any]) -> None:
    atomic.write_text(out / layout.RECORD, json.dumps(record, indent=2) + "\n")


def _write_card(merged_dir: Path, record: dict[str, Any]) -> None:
    atomic.write_text(merged_dir / "README.md", layout.card_text(record))


# --- before anything heavy ------------------------------------------------------------------


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_disk(out: Path, merged_bytes: int, gguf_bytes: int) -> None:
    need = int((merged_bytes + gguf_bytes) * DISK_MARGIN)
    free, _ = atomic.free_space(out)
    if need > free:
        parts = ", ".join(f"{what} {gb(n)}" for what, n in (("merged bf16", merged_bytes), ("GGUF", gguf_bytes)) if n)
        raise ZeldaError(f"not enough disk under {out}: the export needs {gb(need)} ({parts}), {gb(free)} free")


def available_memory() -> int:
    """MemAvailable of this machine (bytes); 0 when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def choose_device(requested: str, model_bytes: int) -> str:
    """cuda when asked or when the bf16 model fits in the GPU's free memory, else the CPU (merging
    needs no GPU); a device the model does not fit is one line with the sizes."""
    import torch

    need = int(model_bytes * MEMORY_MARGIN)
    if requested in ("", "cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        if free >= need:
            return "cuda"
        if requested == "cuda":
            raise ZeldaError(f"not enough GPU memory to merge: the base in bf16 needs {gb(need)}, {gb(free)} free on "
                             f"{torch.cuda.get_device_name(0)} (--device cpu merges in RAM)")
    elif requested == "cuda":
        raise ZeldaError("--device cuda: CUDA is not usable here")
    ram = available_memory()
    if ram and ram < need:
        raise ZeldaError(f"not enough memory to merge: the base in bf16 needs {gb(need)}, {gb(ram)} of RAM available")
    return "cpu"


def held_out_prompts(run_dir: Path, cfg: RunConfig) -> list[str]:
    """The user turns of the first few records of the run's eval split (never trained on); the
    shipped prompt set when the run has none."""
    path = run_dir / cfg.data.eval_file
    if path.is_file():
        users = [m["content"] for r in read_jsonl(path) for m in to_messages(r)[:1] if m["role"] == "user"]
        if users:
            return users[:PROMPTS]
    return [p.user_text() for p in evals.parse_prompts(evals.SHIPPED_PROMPTS).prompts[:PROMPTS]]


def _check_gguf_tools(args: ExportArgs) -> None:
    if args.llama_cpp is None or not (args.llama_cpp / layout.CONVERTER).is_file():
        raise ZeldaError(f"GGUF export needs llama.cpp's {layout.CONVERTER}: `make llama-cpp` (or set "
                         f"${layout.LLAMA_CPP_ENV} to a llama.cpp source dir)")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ZeldaError(f"GGUF export needs llama-cpp-python ({exc}): `make llama-cpp`") from None


def _gguf_versions(args: ExportArgs, plan: list[str]) -> dict[str, str]:
    if not plan:
        return {}
    from importlib import metadata

    return {"llama-cpp-python": metadata.version("llama-cpp-python"), "llama.cpp converter": str(args.llama_cpp)}


# --- merging ----------------------------------------------------------------------------------


def chat_prompt(tokenizer, user: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)


def merge(cfg: RunConfig, adapter: Path, out: Path, tokenizer, prompts: list[str], device: str,
          max_new_tokens: int) -> tuple[Path, dict[str, Any]]:
    """Merge into a bf16 base, save beside the final dir, load the saved model back and check it."""
    import torch
    from transformers import AutoModelForCausalLM

    from .lora import load_adapters

    ids = [tokenizer(chat_prompt(tokenizer, p), return_tensors="pt", add_special_tokens=False)["input_ids"] for p in prompts]
    started = time.time()
    emit("progress", step=f"loading {cfg.model.base} in bf16 on {device}")
    base = AutoModelForCausalLM.from_pretrained(cfg.model.base, dtype=torch.bfloat16, device_map=device)
    base.eval()
    before = next_token_logits(base, ids)
    model = load_adapters(base, str(adapter))
    model.eval()
    reference = next_token_logits(model, ids)
    emit("progress", step="merging the adapter")
    merged = model.merge_and_unload()
    tmp = out / f".{layout.MERGED}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # a killed export's leftovers: ours, never complete
    emit("progress", step="saving safetensors shards")
    merged.save_pretrained(str(tmp), max_shard_size=SHARD)
    tokenizer.save_pretrained(str(tmp))
    del base, model, merged
    _free(torch)
    try:
        layout_check = check_layout(cfg.model.base, tmp)
        emit("progress", step="loading the merged model back to verify it")
        reloaded = AutoModelForCausalLM.from_pretrained(str(tmp), dtype=torch.bfloat16, device_map=device)
        reloaded.eval()
        after = next_token_logits(reloaded, ids)
        check = compare_logits(before, reference, after)
        answers = greedy_answers(reloaded, tokenizer, ids, max_new_tokens)
        del reloaded
        _free(torch)
        if not check["ok"]:
            raise ZeldaError(f"the merged model does not reproduce base + adapter: logits differ by up to "
                             f"{check['max_abs_diff']:.4g} (tolerance {check['tolerance']:.4g}); nothing was exported")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in tmp.glob("*.safetensors"))
    return tmp, {**check, "ok": True, "dtype": "bfloat16", "bytes": size, "shards": len(list(tmp.glob("*.safetensors"))),
                 "layout": layout_check, "prompts": prompts, "prompt_tokens": [int(x.shape[1]) for x in ids],
                 "answers": answers, "max_new_tokens": max_new_tokens,
                 "elapsed_s": round(time.time() - started, 1)}


def _free(torch) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def next_token_logits(model, ids: list) -> list:
    """Logits at every position of each prompt (float32, on the CPU), one prompt at a time: no padding."""
    import torch

    with torch.no_grad():
        return [model(input_ids=x.to(model.device)).logits[0].float().cpu() for x in ids]


def compare_logits(before: list, reference: list, after: list) -> dict[str, Any]:
    """How far the saved merged model (`after`) is from base + adapter (`reference`), next to how
    far the adapter moves the base (`before`): a merge that lost the adapter shows as a difference
    as large as the adapter's effect."""
    diff = max(float((a - r).abs().max()) for a, r in zip(after, reference))
    effect = max(float((r - b).abs().max()) for r, b in zip(reference, before))
    scale = max(float(r.abs().max()) for r in reference)
    positions = sum(r.shape[0] for r in reference)
    agree = sum(int((a.argmax(-1) == r.argmax(-1)).sum()) for a, r in zip(after, reference))
    tolerance = max(LOGIT_TOLERANCE * scale, EFFECT_SHARE * effect, 1e-3)
    return {"max_abs_diff": round(diff, 6), "tolerance": round(tolerance, 6), "adapter_effect": round(effect, 6),
            "top1_agreement": round(agree / max(positions, 1), 4), "positions": positions, "ok": diff <= tolerance}


def greedy_answers(model, tokenizer, ids: list, max_new_tokens: int) -> list[str]:
    import torch

    out = []
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        for x in ids:
            seq = model.generate(input_ids=x.to(model.device), attention_mask=torch.ones_like(x).to(model.device),
                                 do_sample=False, temperature=None, top_p=None, top_k=None,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            new = seq[0][x.shape[1]:].tolist()
            out.append(tokenizer.decode(new[:new.index(eos)] if eos in new else new, skip_special_tokens=True).strip())
    return out


def checkpoint_keys(source: str | Path) -> set[str] | None:
    """Tensor names of a safetensors checkpoint (a dir, or a hub id already in the local cache);
    None when its files are not here."""
    folder = Path(source)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(source), local_files_only=True, allow_patterns=["*.json", "*.safetensors"]))
        except Exception:  # not cached, or not a hub id: the check is skipped and says so
            return None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    keys: set[str] = set()
    for f in files:
        with safe_open(str(f), "pt") as h:
            keys |= set(h.keys())
    return keys


def check_layout(base: str, saved: Path) -> str:
    """The saved tensor names must be the base checkpoint's (per-expert keys as on the hub)."""
    theirs = checkpoint_keys(base)
    if theirs is None:
        return "unchecked (the base checkpoint's files are not on this machine)"
    ours = checkpoint_keys(saved) or set()
    if ours != theirs:
        extra, missing = sorted(ours - theirs), sorted(theirs - ours)
        raise ZeldaError(f"the merged model's tensor names differ from {base}'s checkpoint ({len(extra)} only in the merged "
                         f"model, e.g. {extra[:2]}; {len(missing)} only in the base, e.g. {missing[:2]}): this transformers "
                         f"saves another layout than the base's, which llama.cpp and other tools would not read")
    return f"same {len(ours)} tensor names as the base checkpoint"


def put_in_place(tmp: Path, final: Path) -> None:
    """Rename a finished dir into place; an older export of the same name (ours) goes after."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
