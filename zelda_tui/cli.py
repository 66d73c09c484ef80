"""Entry point: `zelda-tui` opens the TUI; `zelda-tui [--no-ui] COMMAND` runs it headless.

Every command calls the same `Services` the screens use. Output: markdown tables for people,
`--json` for scripts; rich progress bars on a TTY (stderr). Exit codes: 0 ok, 1 failed,
2 usage or config error.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .core.errors import ZeldaError
from .services import Services, build_services
from .widgets.format import human_bytes, short_time


def _common(top: bool) -> argparse.ArgumentParser:
    """--config/--json accepted before or after the command (SUPPRESS keeps the top value)."""
    common = argparse.ArgumentParser(add_help=False)
    default = {} if top else {"default": argparse.SUPPRESS}
    common.add_argument("--config", metavar="PATH", help="config.toml (else $ZELDA_TUI_CONFIG, else ./config.toml)", **default)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout", **default)
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    p = argparse.ArgumentParser(
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
    ts.add_argument("--local", action="store_true", help="train on this machine (the default until remote runs land)")
    ts.add_argument("--device", choices=["auto", "cuda", "cpu"], help="override train.device")
    ts.add_argument("--max-steps", type=int, help="override train.max_steps (e.g. a quick smoke run)")
    train.add_parser("list", help="runs with state, step, loss, ETA", parents=[common])
    for action, text in (("status", "one run in detail"), ("stop", "SIGTERM: checkpoint, then exit"),
                         ("resume", "restart a stopped/died run from its latest checkpoint")):
        a = train.add_parser(action, help=text, parents=[common])
        a.add_argument("run", help="run name (or run directory)")
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

    cfg = sub.add_parser("config", help="config.toml").add_subparsers(dest="action", required=True, metavar="ACTION")
    cfg.add_parser("check", help="validate and summarise the config", parents=[common])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if args.no_ui:
            parser.print_usage(sys.stderr)
            print("zelda-tui: error: --no-ui needs a COMMAND", file=sys.stderr)
            return 2
        return _run_tui(args)
    try:
        return COMMANDS[(args.command, getattr(args, "action", None))](args)
    except ZeldaError as exc:
        print(f"zelda-tui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("zelda-tui: interrupted", file=sys.stderr)
        return 130


def _run_tui(args: argparse.Namespace) -> int:
    from .app import ZeldaApp

    try:
        services = build_services(args.config)
    except ZeldaError as exc:
        print(f"zelda-tui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        ZeldaApp(services).run()
    finally:
        services.close()
    return 0


# --- helpers ---------------------------------------------------------------------------


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def _progress(args: argparse.Namespace, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a TTY stderr, nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _services(args: argparse.Namespace) -> Services:
    return build_services(args.config)


def _table(headers: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A markdown pipe table (readable in a terminal, pasteable into notes)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = [i < len(align) and align[i] == "r" for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


# --- commands --------------------------------------------------------------------------


def cmd_demo_init(args: argparse.Namespace) -> int:
    from .core import demo
    from .core.jsonl import make_pool

    pool = make_pool()
    try:
        with _progress(args, "generating demo datasets") as progress:
            path = demo.init_workspace(
                args.dir, seed=args.seed if args.seed is not None else demo.DEFAULT_SEED,
                force=args.force, pool=pool, progress=progress,
            )
    finally:
        pool.shutdown()
    if args.json:
        _emit_json({"config": str(path)})
    else:
        print(f"demo workspace written: {path}\nopen it with: zelda-tui --config {path}")
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        with _progress(args, "scanning datasets") as progress:
            reports = services.scan(force=args.rescan, progress=progress)
    finally:
        services.close()
    if args.json:
        _emit_json([r.to_json() for r in reports])
    else:
        rows = []
        for r in reports:
            if r.error:
                rows.append([r.name, "-", "-", "-", "-", "-", r.error])
                continue
            q = r.qa
            rows.append([
                r.name, f"{r.records:,}", human_bytes(r.bytes), short_time(r.mtime),
                f"{q['parse_errors']['count']:,}", f"{r.problems:,}", f"{q['exact_duplicates']:,} dup",
            ])
        print(_table(["dataset", "records", "size", "modified", "parse errors", "problems", "notes"], rows, "lrrrrrl"))
    return 1 if any(r.error for r in reports) else 0


def cmd_qa(args: argparse.Namespace) -> int:
    from .core.report import qa_markdown

    services = _services(args)
    try:
        for name in args.names:
            services.config.dataset(name)
        with _progress(args, "QA") as progress:
            reports = services.scan(force=args.rescan, names=args.names or None, progress=progress)
    finally:
        services.close()
    if args.json:
        _emit_json([r.to_json() for r in reports])
    else:
        print(qa_markdown(reports, services.config.model.max_seq_len))
    return 1 if any(r.error for r in reports) else 0


def cmd_registry_index(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        rows, target = services.registry_index(args.out)
    finally:
        services.close()
    if args.json:
        _emit_json({"export": str(target), "datasets": rows})
    else:
        print(_table(
            ["dataset", "records", "size", "sha256", "tags"],
            [[r["name"], f"{r['records']:,}", human_bytes(r["bytes"]), r["sha256"][:16], ", ".join(r["tags"])] for r in rows],
            "lrrll",
        ))
        print(f"\nexported {target}")
    return 0


def cmd_mix_list(args: argparse.Namespace) -> int:
    services = _services(args)
    services.close()
    cfg = services.config
    phase_of = {m: p for p, m in cfg.phases.items()}
    if args.json:
        _emit_json([{**m.__dict__, "phase": phase_of.get(m.name)} for m in cfg.mixes.values()])
    else:
        print(_table(
            ["mix", "phase", "datasets", "eval", "seed", "description"],
            [[m.name, phase_of.get(m.name, ""), len(m.datasets), m.eval_fraction, m.seed, m.description] for m in cfg.mixes.values()],
            "lrrrrl",
        ))
    return 0


def _plan_rows(plan_json: dict) -> str:
    rows = [[d["name"], f"{d['total']:,}", f"{d['train']:,}", f"{d['eval']:,}", f"{d['ratio_percent']:.2f} %", d["parse_errors"]]
            for d in plan_json["datasets"]]
    rows.append(["**total**", f"{plan_json['total_records']:,}", f"{plan_json['total_train']:,}", f"{plan_json['total_eval']:,}",
                 "100 %", plan_json["parse_errors_total"]])
    return _table(["dataset", "records", "train", "eval", "ratio", "parse errors"], rows, "lrrrrr")


def cmd_mix_preview(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        with _progress(args, "counting records") as progress:
            services.scan(names=list(services.config.mix(args.name).datasets), progress=progress)
        plan = services.mix_preview(args.name)
    finally:
        services.close()
    data = plan.to_json()
    if args.json:
        _emit_json(data)
    else:
        m = plan.mix
        print(f"mix {m.name}: seed {m.seed}, eval_fraction {m.eval_fraction}, min_eval_samples {m.min_eval_samples} (preview, nothing written)\n")
        print(_plan_rows(data))
    return 0


def cmd_mix_build(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        with _progress(args, "building mix") as progress:
            meta = services.mix_build(
                args.name, args.out, args.overwrite,
                progress=(lambda phase, done, total: progress(done, total)) if progress else None,
            )
        out = args.out or services.config.mix_dir(args.name)
    finally:
        services.close()
    if args.json:
        _emit_json({"out": str(out), "metadata": meta})
    else:
        print(_plan_rows(meta))
        print(f"\nbuilt {out}: train {meta['total_train']:,}, eval {meta['total_eval']:,}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    services = _services(args)
    services.close()
    cfg = services.config
    summary = {
        "config": str(cfg.path),
        "workspace": str(cfg.workspace),
        "datasets_dir": str(cfg.datasets_dir),
        "datasets": {n: str(d.path) for n, d in cfg.datasets.items()},
        "missing_files": [n for n, d in cfg.datasets.items() if not d.path.is_file()],
        "mixes": list(cfg.mixes),
        "phases": cfg.phases,
        "model": cfg.model.__dict__,
    }
    if args.json:
        _emit_json(summary)
    else:
        print(f"{cfg.path}: ok — {len(cfg.datasets)} datasets, {len(cfg.mixes)} mixes, model {cfg.model.base}")
        for name in summary["missing_files"]:
            print(f"  warning: dataset '{name}' file not found: {cfg.datasets[name].path}")
    return 0


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _fmt_num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cmd_train_start(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        run_dir = services.train_start(args.mix, args.phase, device=args.device, max_steps=args.max_steps)
        info = services.run_info(run_dir)
    finally:
        services.close()
    if args.json:
        _emit_json(info)
    else:
        print(f"started {run_dir.name} (pid {info['pid']}) in {run_dir}\nfollow it with: zelda-tui tail {run_dir.name}")
    return 0


def cmd_train_list(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        rows = services.run_list()
    finally:
        services.close()
    if args.json:
        _emit_json(rows)
    else:
        print(_table(
            ["run", "state", "mix", "step", "loss", "eval loss", "tok/s", "ETA"],
            [[r["name"], r["state"], r["mix"] or "-", f"{r['step']}/{r['max_steps'] or '?'}", _fmt_num(r["loss"]),
              _fmt_num(r["eval_loss"]), _fmt_num(r["tokens_per_s"], 0), _fmt_eta(r["eta_s"])] for r in rows],
            "llllrrrr",
        ) if rows else "no runs yet: zelda-tui train start --phase 0")
    return 0


def cmd_train_status(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        info = services.run_info(services.run_dir(args.run))
    finally:
        services.close()
    if args.json:
        _emit_json(info)
    else:
        for key, value in info.items():
            print(f"{key:>16}: {value if value is not None else '-'}")
    return 0 if info["state"] not in ("failed", "died") else 1


def cmd_train_stop(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        pid = services.train_stop(args.run)
    finally:
        services.close()
    print(f"sent SIGTERM to {pid}: the run saves a checkpoint and stops (resume with `zelda-tui train resume {args.run}`)")
    return 0


def cmd_train_resume(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        run_dir = services.train_resume(args.run)
    finally:
        services.close()
    print(f"resumed {run_dir.name}: it continues from its latest complete checkpoint")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow train.log and metrics.jsonl by byte offset until the run is no longer active."""
    import time

    from .core import runs

    services = _services(args)
    try:
        run_dir = services.run_dir(args.run)
        log_tail = runs.LineTail(run_dir / runs.TRAIN_LOG)
        metric_tail = runs.LineTail(run_dir / runs.METRICS)
        while True:
            if not args.metrics_only:
                for line in log_tail.read_new():
                    print(line, flush=True)
            for event in runs.parse_metrics(metric_tail.read_new()):
                print(json.dumps(event) if args.json else _metric_line(event), flush=True)
            state = services.run_info(run_dir)["state"]
            if args.no_follow or state not in runs.ACTIVE_STATES:
                # one last read: lines written just before the state changed
                if not args.metrics_only:
                    for line in log_tail.read_new():
                        print(line, flush=True)
                for event in runs.parse_metrics(metric_tail.read_new()):
                    print(json.dumps(event) if args.json else _metric_line(event), flush=True)
                break
            time.sleep(0.25)
    finally:
        services.close()
    return 1 if state in ("failed", "died") else 0


def _metric_line(e: dict) -> str:
    if e.get("event") == "train":
        return (f"[metrics] step {e.get('step')} loss {_fmt_num(e.get('loss'))} lr {e.get('lr')} "
                f"{_fmt_num(e.get('tokens_per_s'), 0)} tok/s vram {e.get('vram_peak_gb')} GB eta {_fmt_eta(e.get('eta_s'))}")
    if e.get("event") == "eval":
        per = " ".join(f"{k.split('/', 1)[1]}={v:.4f}" for k, v in e.items() if k.startswith("eval_loss/"))
        return f"[metrics] step {e.get('step')} eval_loss {_fmt_num(e.get('eval_loss'))} {per}"
    return f"[metrics] {e.get('event')}: " + ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "event"))


def cmd_estimate(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        est = services.estimate(args.gpu, args.gpus, args.price, args.mix, args.phase, args.model,
                                seq_len=args.seq_len, micro_batch=args.micro_batch)
    finally:
        services.close()
    if args.json:
        _emit_json(est)
        return 0
    print(f"{est['model']} on {est['gpus']} x {est['gpu']}: mix {est['mix']}, {est['train_tokens']:,} train tokens "
          f"(QA estimate) x {est['epochs']} epochs, {est['micro_batch']} x {est['seq_len']} per GPU step\n")
    print(f"peak VRAM per GPU: {est['vram_gb']:.1f} GiB -> {est['verdict']}")
    for part, gb in est["vram_breakdown_gb"].items():
        print(f"  {part:>24}: {gb:6.2f} GiB")
    print(f"\nthroughput: {est['tokens_per_s_per_gpu']:,.0f} tokens/s per GPU ({est['tokens_per_s_source']})")
    cost = f", ${est['dollars']:,.2f} at ${args.price:g}/h" if args.price else " (pass --price for dollars)"
    print(f"time: {est['hours']:.1f} h{cost}")
    return 0


def cmd_offers_search(args: argparse.Namespace) -> int:
    from .backends.providers.search import PROVIDERS

    providers = PROVIDERS if args.provider == "all" else tuple(p.strip() for p in args.provider.split(","))
    services = _services(args)
    try:
        rows, warnings = services.offers_search(providers, args.query, args.sort, args.phase)
    finally:
        services.close()
    for w in warnings:
        print(f"zelda-tui: warning: {w}", file=sys.stderr)
    if args.json:
        _emit_json({"offers": rows, "warnings": warnings})
        return 0
    shown = rows[: args.limit]
    print(_table(
        ["offer", "gpu", "n", "VRAM", "$/h", "region", "fit", "hours", "total $", "price date"],
        [[r["key"], r["gpu_name"], r["num_gpus"], f"{r['gpu_ram']:g}", f"{r['dph_total']:.3f}", r["region"],
          r["fit"] or "-", _fmt_num(r["hours"], 1), _fmt_num(r["dollars"], 2), r["price_date"]] for r in shown],
        "llrrrllrrl",
    ) if rows else "no offers match")
    if len(rows) > len(shown):
        print(f"\n{len(rows) - len(shown)} more (--limit N, or --json)")
    return 0


def cmd_offers_launch(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        plan = services.launch_plan(args.offer, args.phase)
        offer, budget = plan["offer"], plan["budget"]
        if args.json and (args.dry_run or not args.yes):
            _emit_json(plan)
        elif not args.json:
            est = (f"estimated {offer['hours']:.1f} h, ${offer['dollars']:.2f} for the phase's mix"
                   if offer["hours"] is not None else "no time estimate for this GPU")
            left = f"${budget['left_usd']:.2f} of ${budget['max_total_usd']:.2f} left" if budget["left_usd"] is not None else "no budget set"
            print(f"{args.offer}: {offer['num_gpus']} x {offer['gpu_name']} in {offer['region']} at ${offer['dph_total']:.3f}/h; "
                  f"{est}; VRAM fit: {offer['fit']}; budget: {left}")
            for problem in plan["over_budget"]:
                print(f"  budget guard: {problem}")
        if args.dry_run:
            if not args.json:
                print(plan["request"])
            return 0
        if not args.yes:
            print("nothing launched: add --yes to rent it", file=sys.stderr)
            return 1
        tracked = services.offers_launch(args.offer, args.phase, force=args.force)
    finally:
        services.close()
    if args.json:
        _emit_json(tracked)
    else:
        print(f"launched {tracked['key']} (tracked; `zelda-tui instances list` shows its SSH endpoint when ready)")
    return 0


def cmd_instances_list(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        rows = services.instances_list(refresh=not args.no_refresh)
        budget = services.budget()
    finally:
        services.close()
    if args.json:
        _emit_json({"instances": rows, "budget": budget})
        return 0
    for r in rows:
        if r.get("warning"):
            print(f"zelda-tui: warning: {r['warning']}", file=sys.stderr)
    print(_table(
        ["instance", "offer", "gpu", "state", "ssh", "$/h", "hours", "spent $"],
        [[r["key"], r["offer"], f"{r['num_gpus']} x {r['gpu_name']}", r["state"],
          f"{r['ssh_host']}:{r['ssh_port']}" if r["ssh_host"] else "-", f"{r['dph_total']:.3f}", f"{r['hours']:.2f}",
          f"{r['spent_usd']:.2f}"] for r in rows],
        "lllllrrr",
    ) if rows else "no tracked instances")
    print(f"\nspent so far: ${budget['spent_usd']:.2f}" + (f" of ${budget['max_total_usd']:.2f}" if budget["max_total_usd"] else ""))
    return 0


def cmd_instances_destroy(args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"nothing destroyed: add --yes to destroy {args.instance}", file=sys.stderr)
        return 1
    services = _services(args)
    try:
        row = services.instance_destroy(args.instance)
    finally:
        services.close()
    if args.json:
        _emit_json(row)
    else:
        print(f"destroyed {row['key']} after {(row['ended'] - row['started']) / 3600:.2f} h, ${row['spent_usd']:.2f}")
    return 0


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("demo", "init"): cmd_demo_init,
    ("inventory", None): cmd_inventory,
    ("qa", None): cmd_qa,
    ("registry", "index"): cmd_registry_index,
    ("mix", "list"): cmd_mix_list,
    ("mix", "preview"): cmd_mix_preview,
    ("mix", "build"): cmd_mix_build,
    ("config", "check"): cmd_config_check,
    ("train", "start"): cmd_train_start,
    ("train", "list"): cmd_train_list,
    ("train", "status"): cmd_train_status,
    ("train", "stop"): cmd_train_stop,
    ("train", "resume"): cmd_train_resume,
    ("tail", None): cmd_tail,
    ("estimate", None): cmd_estimate,
    ("offers", "search"): cmd_offers_search,
    ("offers", "launch"): cmd_offers_launch,
    ("instances", "list"): cmd_instances_list,
    ("instances", "destroy"): cmd_instances_destroy,
}
