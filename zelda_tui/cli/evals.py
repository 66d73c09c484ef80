"""Commands on evals: eval run / prompts / show, leaderboard."""

from __future__ import annotations

import argparse
import sys
import threading
from functools import partial
from pathlib import Path

from ..core import evals
from ..core.evals import GenerateOptions
from ..core.leaderboard import (BEST_ASSEMBLES, BEST_LOSS, BEST_MARKS, DEFAULT_SORT, EXPORT_MARK, export_text,
                                 sort_key_names)
from ..core.format import num, percent
from ..services.evals import EvalReport
from .common import emit_json, open_services, table

_pct = partial(percent, missing="-")  # the CLI's tables are plain ASCII


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """`eval run|prompts|show` and `leaderboard` (registered by cli/__init__.py)."""
    ev = sub.add_parser("eval", help="evaluate checkpoints with the real assembler").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    er = ev.add_parser("run", help="generate answers (base + adapters), validate with Asar, score, store", parents=[common])
    er.add_argument("--run", required=True, help="run name (or run directory)")
    er.add_argument("--checkpoint", default="all", help="N, checkpoint-N, base, final, a comma list, or all (default)")
    er.add_argument("--prompts", type=Path, metavar="FILE", help="prompt file (JSONL; default: the shipped demo set)")
    er.add_argument("--samples", type=int, default=0, metavar="K", help="sampled answers per prompt for pass@k (besides the greedy one)")
    er.add_argument("--max-new-tokens", type=int, default=256)
    er.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call")
    er.add_argument("--seed", type=int, default=0, help="sampling seed")
    er.add_argument("--temperature", type=float, default=0.8)
    er.add_argument("--top-p", type=float, default=0.95)
    er.add_argument("--device", choices=["auto", "cuda", "cpu"], help="override run.toml's train.device")
    er.add_argument("--limit", type=int, metavar="N", help="only the first N prompts (a quick look)")
    ep = ev.add_parser("prompts", help="write a prompt file from a mix's eval split (the held-out records)", parents=[common])
    ep.add_argument("--mix", required=True, help="mix name (built first when missing)")
    ep.add_argument("--out", type=Path, required=True, metavar="FILE")
    ep.add_argument("--limit", type=int, metavar="N", help="only the first N records")
    es = ev.add_parser("show", help="one checkpoint's answers with Asar's verdicts", parents=[common])
    es.add_argument("--run", required=True)
    es.add_argument("--checkpoint", required=True, help="base, final or checkpoint-N")
    es.add_argument("--prompt-set", help="default: the last one scored")
    es.add_argument("--prompt", type=int, metavar="IDX", help="only this prompt")
    lb = sub.add_parser("leaderboard", help="checkpoints of every run ranked by eval scores", parents=[common])
    lb.add_argument("--sort", default=DEFAULT_SORT, choices=sort_key_names(), help="rank by this column (best first)")
    lb.add_argument("--prompt-set", help="default: the last one scored")


def cmd_eval_run(args: argparse.Namespace) -> int:
    cancel = threading.Event()
    opts = GenerateOptions(samples=args.samples, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                       seed=args.seed, temperature=args.temperature, top_p=args.top_p, device=args.device or "")
    tty = sys.stderr.isatty()

    def progress(name: str, done: int, total: int) -> None:
        """A line updated in place on a terminal; one line per finished checkpoint in a log."""
        if tty:
            print(f"\r\033[K{name}: {done}/{total} answers", end="", file=sys.stderr, flush=True)
        elif done == total:
            print(f"{name}: {total} answers generated", file=sys.stderr, flush=True)

    with open_services(args) as services:
        try:
            report = services.evals.run(args.run, args.checkpoint, args.prompts, opts, args.limit, progress, cancel,
                                        say=lambda text: print(("\r\033[K" if tty else "") + text, file=sys.stderr,
                                                               flush=True))
        except KeyboardInterrupt:
            cancel.set()
            raise
    if tty:
        print(file=sys.stderr)
    for problem in report.problems:
        print(f"zelda-tui: skipped {problem}", file=sys.stderr)
    if args.json:
        emit_json(report.to_json())
    else:
        print(_report_text(report))
    return 1 if report.failed or report.problems else 0


def _report_text(report: EvalReport) -> str:
    head = f"{report.run}: {report.prompts} prompt{'s' if report.prompts != 1 else ''} of '{report.prompt_set}'"
    if report.problems:
        head += f" ({len(report.problems)} bad lines skipped)"
    rows = []
    for c in report.checkpoints:
        s = c.summary or evals.Summary()
        rows.append([c.checkpoint, c.step if c.step is not None else "-", c.state, _pct(s.assemble_rate),
                     _pct(s.pass_at_1), _pct(s.pass_at_k), _pct(s.match_rate), c.message or ""])
    return head + "\n\n" + table(["checkpoint", "step", "state", "assembles", "pass@1", "pass@k", "match", "message"],
                                 rows, "lrlrrrrl")


def cmd_eval_prompts(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        count, out = services.evals.prompts_from_mix(args.mix, args.out, args.limit)
    if args.json:
        emit_json({"prompts": count, "path": str(out), "mix": args.mix})
    else:
        print(f"wrote {count} prompts from mix {args.mix}'s eval split to {out}\n"
              f"evaluate with: zelda-tui eval run --run RUN --prompts {out}")
    return 0


def cmd_eval_show(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        prompt_set = args.prompt_set or services.evals.leaderboard().prompt_set or ""
        rows = services.evals.samples(services.runs.dir(args.run).name, args.checkpoint, prompt_set, args.prompt)
    if args.json:
        emit_json([r.to_json() for r in rows])
        return 0
    if not rows:
        print(f"no stored answers for {args.run} {args.checkpoint} (run `zelda-tui eval run --run {args.run}`)")
        return 1
    for r in rows:
        kind = "greedy" if r.sample == 0 else f"sample {r.sample}"
        where = f" line {r.line}" if r.line else ""
        match = "" if r.match is None else ("  match" if r.match else "  no match")
        print(f"## prompt {r.prompt_idx} ({kind}{', ' + r.category if r.category else ''}): "
              f"{r.verdict} [{r.checker}]{where}{match}")
        print(r.prompt.strip()[:400])
        print("--- answer")
        print(r.answer.rstrip() or "(empty)")
        for err in r.errors:
            print(f"  ! {err}")
        print()
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        board = services.evals.leaderboard(args.prompt_set, args.sort)
    if args.json:
        emit_json(board.to_json())
        return 0
    rows = board.rows
    if not rows:
        print("no eval results yet: zelda-tui eval run --run RUN (see zelda-tui train list)")
        return 0
    print(f"prompt set '{board.prompt_set}', ranked by {args.sort}"
          + (f" (other sets: {', '.join(s for s in board.prompt_sets if s != board.prompt_set)})"
             if len(board.prompt_sets) > 1 else "") + "\n")
    print(table(
        ["#", "run", "checkpoint", "step", "assembles", "syntax", "unresolved", "pass@1", "pass@k", "match", "eval loss"],
        [[r.rank, ("(base) " + r.model.rsplit("/", 1)[-1]) if r.is_base else r.run,
          r.checkpoint + "".join(" " + BEST_MARKS[m] for m in r.best) + (f" {EXPORT_MARK}" if r.exported else ""),
          r.step if r.step is not None else "-", _pct(r.assemble_rate), _pct(r.rates.get("syntax_error", 0.0)),
          _pct(r.rates.get("unresolved_label", 0.0)), _pct(r.pass_at_1),
          _pct(r.pass_at_k) + (f" (k={r.samples})" if r.pass_at_k is not None else ""),
          _pct(r.match_rate), num(r.eval_loss, ".4f", missing="-")] for r in rows],
        "rllrrrrrrrr",
    ))
    if any(r.best for r in rows):
        print(f"\n{BEST_MARKS[BEST_ASSEMBLES]} assembles best in its run   "
              f"{BEST_MARKS[BEST_LOSS]} lowest eval loss (early stopping's pick where it ran)")
    exported = [r for r in rows if r.exported]
    if exported:
        print(f"\n{EXPORT_MARK} exported (merged model logits check, GGUF greedy answers same as the merged model's):")
        for r in exported:
            print(f"  #{r.rank} {r.run} {r.checkpoint}: {export_text(r.exported)}")
    per_ds = sorted({d for r in rows for d in r.eval_loss_by_dataset})
    if per_ds:
        print("\neval loss per dataset (at the checkpoint's step):\n")
        print(table(["#", "checkpoint", *per_ds],
                    [[r.rank, r.checkpoint, *[num(r.eval_loss_by_dataset.get(d), ".4f", missing="-") for d in per_ds]]
                     for r in rows if not r.is_base], "rl" + "r" * len(per_ds)))
    return 0
