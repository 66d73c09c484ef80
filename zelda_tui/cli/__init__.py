"""Entry point: `zelda-tui` opens the TUI; `zelda-tui [--no-ui] COMMAND` runs it headless.

Every command calls the same `Services` the screens use. Output: markdown tables for people,
`--json` for scripts (errors then a JSON object on stderr); rich progress bars on a TTY
(stderr). Exit codes: 0 ok, 1 failed, 2 usage or config error; 141 (quietly) when the reader
of stdout went away (`| head -1`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from ..core.errors import ZeldaError
from ..services import build_services
from . import asm, datasets, evals, export, offers, train
from .common import print_error, stdout_gone


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors follow --json (one JSON object on stderr, exit 2)."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if not self.json_errors:
            super().error(message)
        print_error(f"{self.prog}: {message}", as_json=True)
        raise SystemExit(2)


def _common(top: bool) -> _Parser:
    """--config/--json accepted before or after the command (SUPPRESS keeps the top value)."""
    common = _Parser(add_help=False)
    default: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    common.add_argument("--config", metavar="PATH", help="config.toml (else $ZELDA_TUI_CONFIG, else ./config.toml)", **default)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout", **default)
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    p = _Parser(
        prog="zelda-tui",
        description="QLoRA fine-tunes from raw JSONL to a ranked checkpoint. No command: open the TUI.",
        parents=[_common(top=True)],
    )
    p.add_argument("--no-ui", action="store_true", help="run COMMAND headless (the default when a command is given)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="demo workspace").add_subparsers(dest="action", required=True, metavar="ACTION")
    d = demo.add_parser("init", help="write config.toml + six generated datasets with the real sizes", parents=[common])
    d.add_argument("dir", type=Path)
    d.add_argument("--seed", type=int, default=None)
    d.add_argument("--force", action="store_true", help="write into a non-empty directory")

    inv = sub.add_parser("inventory", help="datasets: records, size, modified, problems", parents=[common])
    inv.add_argument("--rescan", action="store_true", help="ignore the cache")

    q = sub.add_parser("qa", help="full QA report per dataset (markdown, or --json)", parents=[common])
    q.add_argument("names", nargs="*", metavar="DATASET")
    q.add_argument("--rescan", action="store_true", help="ignore the cache")

    reg = sub.add_parser("registry", help="dataset registry").add_subparsers(dest="action", required=True, metavar="ACTION")
    ri = reg.add_parser("index", help="record name/path/records/bytes/sha256/mtime/tags; export datasets_registry.json", parents=[common])
    ri.add_argument("--out", type=Path, help="export path (default: workspace/datasets_registry.json)")

    mix = sub.add_parser("mix", help="mixes").add_subparsers(dest="action", required=True, metavar="ACTION")
    mix.add_parser("list", help="configured mixes and phases", parents=[common])
    mp = mix.add_parser("preview", help="counts and ratios; writes nothing", parents=[common])
    mp.add_argument("name")
    mb = mix.add_parser("build", help="write train/eval/val.jsonl + metadata.json atomically", parents=[common])
    mb.add_argument("name")
    mb.add_argument("--out", type=Path, help="output dir (default: workspace/mixes/NAME)")
    mb.add_argument("--overwrite", action="store_true", help="replace a non-empty output dir")

    train = sub.add_parser("train", help="QLoRA training runs").add_subparsers(dest="action", required=True, metavar="ACTION")
    ts = train.add_parser("start", help="freeze a run (run.toml + data) and start the trainer detached", parents=[common])
    ts.add_argument("--mix", help="mix to train on (default: the phase's, else the last phase's)")
    ts.add_argument("--phase", type=int, help="phase N of [phases.N]: its mix and training overrides")
    where = ts.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="train on this machine (the default)")
    where.add_argument("--remote", metavar="HOST", help="train on a GPU box over SSH (an alias from ~/.ssh/config, or user@host:port)")
    ts.add_argument("--accept-new-host-key", action="store_true",
                    help="trust the box's SSH host key if known_hosts has none yet (a changed key is always refused)")
    ts.add_argument("--device", choices=["auto", "cuda", "cpu"], help="override train.device")
    ts.add_argument("--max-steps", type=int, help="override train.max_steps (e.g. a quick smoke run)")
    ts.add_argument("--eval-during", choices=["off", "after", "alongside"],
                    help="override [eval] during_training: the box evaluates every checkpoint once training ends "
                         "(after) or as each lands (alongside)")
    train.add_parser("list", help="runs with state, step, loss, ETA", parents=[common])
    for action, text in (("status", "one run in detail"), ("stop", "SIGTERM: checkpoint, then exit"),
                         ("resume", "restart a stopped/died run from its latest checkpoint")):
        a = train.add_parser(action, help=text, parents=[common])
        a.add_argument("run", help="run name (or run directory)")
    tf = train.add_parser("fetch", help="bring a remote run's lora_adapters/ (and checkpoints) home, sha256-verified", parents=[common])
    tf.add_argument("run", help="run name")
    tf.add_argument("--checkpoint", default="none", help="also these checkpoints: none (default), latest, all, or steps like 50,100")
    tb = train.add_parser("backup", help="rsync a remote run's lora_adapters/ from the GPU box to [backup] host:path", parents=[common])
    tb.add_argument("run", help="run name")
    tr = train.add_parser("recover", help="a lost remote run goes on elsewhere: the cheapest fitting offer within "
                          "[budget] (or --host), from its newest checkpoint safe here", parents=[common])
    tr.add_argument("run", help="run name")
    tr.add_argument("--host", help="an SSH host to go on (no offer is rented)")
    tr.add_argument("--query", help="offer query instead of the run's own (its lost instance's GPU and count)")
    tr.add_argument("--accept-new-host-key", action="store_true", help="trust --host's key on first use")
    tr.add_argument("--dry-run", action="store_true", help="show the plan only")
    tr.add_argument("--yes", action="store_true", help="rent the offer and go on (nothing is rented without it)")
    tl = sub.add_parser("tail", help="follow a run's train.log and metrics (replays a finished run)", parents=[common])
    tl.add_argument("run", help="run name (or run directory)")
    tl.add_argument("--no-follow", action="store_true", help="print what is there and exit")
    tl.add_argument("--metrics-only", action="store_true", help="only metrics events")

    es = sub.add_parser("estimate", help="peak VRAM, hours and dollars of training a mix on a GPU", parents=[common])
    es.add_argument("--gpu", default="H100 80GB", help="GPU type, any provider spelling (default: H100 80GB)")
    es.add_argument("--gpus", type=int, default=1, help="GPUs in the box (DDP)")
    es.add_argument("--price", type=float, default=0.0, metavar="USD_PER_H", help="$/h of the whole box")
    es.add_argument("--mix", help="mix (default: the phase's, else the last phase's)")
    es.add_argument("--phase", type=int)
    es.add_argument("--model", help="override model.base (a shipped spec: DeepSeek-Coder-V2-Lite, Qwen2.5-Coder-32B, CodeLlama-34b)")
    es.add_argument("--seq-len", type=int, help="override model.max_seq_len")
    es.add_argument("--micro-batch", type=int, help="override train.micro_batch (per GPU)")

    offers = sub.add_parser("offers", help="GPU offers").add_subparsers(dest="action", required=True, metavar="ACTION")
    osr = offers.add_parser("search", help="offers of Vast/Vultr/GCP filtered by a vastai query, with fit and cost", parents=[common])
    osr.add_argument("--provider", default="all", help="vast, vultr, gcp or all (comma-separated list allowed)")
    osr.add_argument("--query", help='vastai grammar, e.g. "gpu_name=A100 gpu_ram>=80 dph_total<2.5" (default: the plan\'s A100 80GB)')
    osr.add_argument("--sort", default="dph_total", help="column(s), '-' for descending: dph_total, -reliability, ...")
    osr.add_argument("--phase", type=int, help="phase whose mix prices the run (default: the last phase)")
    osr.add_argument("--limit", type=int, default=30, help="rows to print (markdown; --json prints all)")

    ol = offers.add_parser("launch", help="rent an offer (provider:id) after showing its cost and the budget", parents=[common])
    ol.add_argument("offer", help="vast:<id> or vultr:<plan>@<region> (from `offers search`)")
    ol.add_argument("--yes", action="store_true", help="really rent it (without it, nothing is launched)")
    ol.add_argument("--dry-run", action="store_true", help="print the exact request (key redacted) and stop")
    ol.add_argument("--force", action="store_true", help="launch even when the budget guard objects")
    ol.add_argument("--phase", type=int, help="phase whose mix prices the run (default: the last phase)")
    inst = sub.add_parser("instances", help="launched GPU instances").add_subparsers(dest="action", required=True, metavar="ACTION")
    il = inst.add_parser("list", help="tracked instances: state, SSH endpoint, spend so far", parents=[common])
    il.add_argument("--no-refresh", action="store_true", help="do not ask the providers (offline)")
    idd = inst.add_parser("destroy", help="destroy a tracked instance", parents=[common])
    idd.add_argument("instance", help="instance key (provider:id) or id")
    idd.add_argument("--yes", action="store_true", help="really destroy it")
    ie = inst.add_parser("enforce", help="destroy instances past budget.max_runtime_hours, or idle after their last run "
                         "(budget.on_idle = \"destroy\"); for cron", parents=[common])
    ie.add_argument("--dry-run", action="store_true", help="say what would be destroyed, destroy nothing")

    evals.add_parsers(sub, common)
    export.add_parser(sub, common)

    cfg = sub.add_parser("config", help="config.toml").add_subparsers(dest="action", required=True, metavar="ACTION")
    cfg.add_parser("check", help="validate and summarise the config", parents=[common])
    asm.add_parser(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _Parser.json_errors = "--json" in argv
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if args.no_ui:
            parser.print_usage(sys.stderr)
            print("zelda-tui: error: --no-ui needs a COMMAND", file=sys.stderr)
            return 2
        return _run_tui(args)
    try:
        code = COMMANDS[(args.command, getattr(args, "action", None))](args)
        sys.stdout.flush()  # inside the try: a reader gone before the last write is handled below
        return code
    except BrokenPipeError:
        return stdout_gone()
    except ZeldaError as exc:
        print_error(str(exc), args.json)
        return exc.exit_code
    except KeyboardInterrupt:
        print("zelda-tui: interrupted", file=sys.stderr)
        return 130


def _run_tui(args: argparse.Namespace) -> int:
    from ..app import ZeldaApp

    try:
        services = build_services(args.config)
    except ZeldaError as exc:
        print_error(str(exc), args.json)
        return exc.exit_code
    try:
        ZeldaApp(services).run()
    except ZeldaError as exc:  # from before the screen opens: a [keys] id that none of the bindings has
        print_error(str(exc), args.json)
        return exc.exit_code
    finally:
        services.close()
    return 0


# --- helpers ---------------------------------------------------------------------------


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("demo", "init"): datasets.cmd_demo_init,
    ("inventory", None): datasets.cmd_inventory,
    ("qa", None): datasets.cmd_qa,
    ("registry", "index"): datasets.cmd_registry_index,
    ("mix", "list"): datasets.cmd_mix_list,
    ("mix", "preview"): datasets.cmd_mix_preview,
    ("mix", "build"): datasets.cmd_mix_build,
    ("config", "check"): datasets.cmd_config_check,
    ("asm", "check"): asm.cmd_asm_check,
    ("train", "start"): train.cmd_train_start,
    ("train", "list"): train.cmd_train_list,
    ("train", "status"): train.cmd_train_status,
    ("train", "stop"): train.cmd_train_stop,
    ("train", "resume"): train.cmd_train_resume,
    ("train", "fetch"): train.cmd_train_fetch,
    ("train", "backup"): train.cmd_train_backup,
    ("train", "recover"): train.cmd_train_recover,
    ("tail", None): train.cmd_tail,
    ("estimate", None): train.cmd_estimate,
    ("eval", "run"): evals.cmd_eval_run,
    ("eval", "prompts"): evals.cmd_eval_prompts,
    ("eval", "show"): evals.cmd_eval_show,
    ("leaderboard", None): evals.cmd_leaderboard,
    ("export", None): export.cmd_export,
    ("offers", "search"): offers.cmd_offers_search,
    ("offers", "launch"): offers.cmd_offers_launch,
    ("instances", "list"): offers.cmd_instances_list,
    ("instances", "destroy"): offers.cmd_instances_destroy,
    ("instances", "enforce"): offers.cmd_instances_enforce,
}
