"""`zelda-tui export RUN`: a checkpoint merged into its base and converted to GGUF, verified by running them."""

from __future__ import annotations

import argparse
import sys
import threading

from ..backends.export_runner import GGUF_TYPES
from ..services.export import ExportView
from .common import emit_json, open_services


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ex = sub.add_parser("export", help="merge a checkpoint into its base (bf16 safetensors) and/or convert it to GGUF, "
                        "verified by running them", parents=[common])
    ex.add_argument("run", help="run name (or run directory)")
    ex.add_argument("--checkpoint", default="final", help="N, checkpoint-N, best (the run's top leaderboard row) or "
                    "final (lora_adapters/, the default)")
    ex.add_argument("--merged", action="store_true", help="the merged model (always made: GGUF is made from it); for "
                    "a remote run, bring it home too (the default when no --gguf is asked)")
    ex.add_argument("--gguf", metavar="TYPES", default="",
                    help=f"comma list of GGUF types: {', '.join(GGUF_TYPES)} (the 16-bit file is always written)")
    ex.add_argument("--device", choices=["auto", "cuda", "cpu"], help="where to merge (default: the GPU when the bf16 "
                    "model fits in it, else the CPU)")
    ex.add_argument("--gguf-pre", metavar="NAME", default="",
                    help="llama.cpp pre-tokenizer for a tokenizer its converter does not recognise (e.g. deepseek-llm)")
    ex.add_argument("--here", action="store_true", help="a remote run: export on this machine from the adapters fetched "
                    "here (its box is gone), not on its box")


def cmd_export(args: argparse.Namespace) -> int:
    cancel = threading.Event()

    def say(text: str) -> None:
        if text:
            print(f"export: {text}", file=sys.stderr, flush=True)

    with open_services(args) as services:
        try:
            view = services.export.export(args.run, args.checkpoint, args.gguf.split(","), args.device or "",
                                          args.gguf_pre, say, cancel, merged=True if args.merged else None,
                                          here=args.here)
        except KeyboardInterrupt:
            cancel.set()
            raise
    if args.json:
        emit_json(view.to_json())
    else:
        print(_text(view))
    return 0


def _text(view: ExportView) -> str:
    if view.remote_path:
        lines = [f"exported {view.run} {view.checkpoint} on {view.host} into {view.remote_path}",
                 f"  brought home into {view.path}: {', '.join(view.brought) or 'export.json only'}"]
    else:
        lines = [f"exported {view.run} {view.checkpoint} into {view.path}"]
    m = view.merged or {}
    if m:
        lines.append(f"  merged/  bf16 safetensors, {m.get('shards')} shard(s), {m.get('bytes', 0) / 1e9:.2f} GB; logits "
                     f"within {m.get('max_abs_diff')} of base + adapter (tolerance {m.get('tolerance')}, the adapter "
                     f"moves them by {m.get('adapter_effect')}); {m.get('layout')}")
    for kind, g in view.gguf.items():
        lines.append(f"  gguf/{g.get('file')}  {g.get('bytes', 0) / 1e9:.2f} GB; greedy answers as the merged model's on "
                     f"{g.get('same')}/{g.get('prompts')} prompts")
    return "\n".join(lines)
