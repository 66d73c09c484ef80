"""`zelda-tui asm check FILE...`: validate 65816 snippets / model answers with Asar (or the pre-check).

Works in a workspace (its `[eval]` settings apply) and outside one (defaults: Asar discovered
on $ZELDA_TUI_ASAR / PATH / `.tools/asar`). Exit 0 when every snippet assembles, 1 when any
does not, 2 on usage or config errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core import config as config_mod
from ..core.config import EvalSpec
from ..services.asm import check_files, checker_info, count_verdicts
from .common import emit_json, open_services


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    asm = sub.add_parser("asm", help="65816 assembly").add_subparsers(dest="action", required=True, metavar="ACTION")
    ac = asm.add_parser("check", help="assemble snippets with Asar (or the built-in pre-check) and classify them",
                        parents=[common])
    ac.add_argument("files", nargs="+", type=Path, metavar="FILE",
                    help="a snippet or answer per file (```fences allowed); .jsonl: one answer per line (`output`)")
    ac.add_argument("--jobs", type=int, default=None, metavar="N", help="parallel validations (default: [eval] jobs, else all cores)")
    ac.add_argument("--precheck", action="store_true", help="use the built-in pre-check even when Asar is available")


def _has_config(args: argparse.Namespace) -> bool:
    return bool(args.config or os.environ.get(config_mod.ENV_VAR) or Path(config_mod.DEFAULT_NAME).is_file())


def cmd_asm_check(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        print("zelda-tui: error: --jobs must be >= 1", file=sys.stderr)
        return 2
    if _has_config(args):
        with open_services(args) as services:
            settings = services.asm.settings()
    else:
        settings = EvalSpec()
    info = checker_info(settings, args.precheck)
    if info["checker"] == "precheck" and not args.precheck:
        print(f"zelda-tui: warning: {info['note']}", file=sys.stderr)
    results = check_files(args.files, settings, args.jobs, args.precheck)
    counts = count_verdicts(results)
    if args.json:
        emit_json({"checker": info, "counts": counts, "results": results})
    else:
        for r in results:
            first = r["errors"][0] if r["errors"] else ""
            print(f"{r['file']}: {r['verdict']} ({r['checker']})" + (f"  {first}" if first else ""))
        ran = f"Asar {info['version']}" if info["checker"] == "asar" else "the built-in pre-check"
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        print(f"\n{len(results)} checked with {ran}: {summary}")
    return 0 if all(r["verdict"] == "assembles" for r in results) else 1
