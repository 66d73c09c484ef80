"""Commands on datasets and mixes: demo, inventory, qa, registry, mix, config."""

from __future__ import annotations

import argparse

from ..core.format import human_bytes, short_time
from .common import emit_json, open_services, progress_bar, table


def cmd_demo_init(args: argparse.Namespace) -> int:
    from ..demo import workspace as demo
    from ..core.jsonl import make_pool
    from ..services.demo import init_demo

    pool = make_pool()
    try:
        with progress_bar(args, "generating demo datasets") as progress:
            path = init_demo(
                args.dir, seed=args.seed if args.seed is not None else demo.DEFAULT_SEED,
                force=args.force, pool=pool, progress=progress,
            )
    finally:
        pool.shutdown()
    if args.json:
        emit_json({"config": str(path)})
    else:
        print(f"demo workspace written: {path} (six datasets and one finished run of made-up demo data, scored)\n"
              f"open it with: zelda-tui --config {path}")
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        with progress_bar(args, "scanning datasets") as progress:
            reports = services.datasets.scan(force=args.rescan, progress=progress)
    if args.json:
        emit_json([r.to_json() for r in reports])
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
        print(table(["dataset", "records", "size", "modified", "parse errors", "problems", "notes"], rows, "lrrrrrl"))
    return 1 if any(r.error for r in reports) else 0


def cmd_qa(args: argparse.Namespace) -> int:
    from ..core.report import qa_markdown

    with open_services(args) as services:
        for name in args.names:
            services.config.dataset(name)
        with progress_bar(args, "QA") as progress:
            reports = services.datasets.scan(force=args.rescan, names=args.names or None, progress=progress)
    if args.json:
        emit_json([r.to_json() for r in reports])
    else:
        print(qa_markdown(reports, services.config.model.max_seq_len))
    return 1 if any(r.error for r in reports) else 0


def cmd_registry_index(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        index = services.datasets.registry_index(args.out)
    if args.json:
        emit_json(index.to_json())
    else:
        print(table(
            ["dataset", "records", "size", "sha256", "tags"],
            [[r.name, f"{r.records:,}", human_bytes(r.bytes), r.sha256[:16], ", ".join(r.tags)] for r in index.datasets],
            "lrrll",
        ))
        print(f"\nexported {index.export}")
    return 0


def cmd_mix_list(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        cfg = services.config
    phase_of = {m: p for p, m in cfg.phases.items()}
    if args.json:
        emit_json([{**m.__dict__, "phase": phase_of.get(m.name)} for m in cfg.mixes.values()])
    else:
        print(table(
            ["mix", "phase", "datasets", "eval", "seed", "locked", "description"],
            [[m.name, phase_of.get(m.name, ""), len(m.datasets), m.eval_fraction, m.seed, "locked" if m.locked else "",
              m.description] for m in cfg.mixes.values()],
            "lrrrrll",
        ))
    return 0


def _plan_rows(plan_json: dict) -> str:
    rows = [[d["name"], f"{d['total']:,}", f"{d['train']:,}", f"{d['eval']:,}", f"{d['ratio_percent']:.2f} %", d["parse_errors"]]
            for d in plan_json["datasets"]]
    rows.append(["**total**", f"{plan_json['total_records']:,}", f"{plan_json['total_train']:,}", f"{plan_json['total_eval']:,}",
                 "100 %", plan_json["parse_errors_total"]])
    return table(["dataset", "records", "train", "eval", "ratio", "parse errors"], rows, "lrrrrr")


def cmd_mix_preview(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        with progress_bar(args, "counting records") as progress:
            services.datasets.scan(names=list(services.config.mix(args.name).datasets), progress=progress)
        plan = services.datasets.mix_preview(args.name)
    data = plan.to_json()
    if args.json:
        emit_json(data)
    else:
        m = plan.mix
        print(f"mix {m.name}: seed {m.seed}, eval_fraction {m.eval_fraction}, min_eval_samples {m.min_eval_samples} (preview, nothing written)\n")
        print(_plan_rows(data))
    return 0


def cmd_mix_build(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        with progress_bar(args, "building mix") as progress:
            built = services.datasets.mix_build(
                args.name, args.out, args.overwrite,
                progress=(lambda phase, done, total: progress(done, total)) if progress else None,
            )
    if args.json:
        emit_json(built.to_json())
    else:
        print(_plan_rows(built.metadata))
        print(f"\nbuilt {built.out}: train {built.total_train:,}, eval {built.total_eval:,}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        cfg = services.config
    missing = [n for n, d in cfg.datasets.items() if not d.path.is_file()]
    summary = {
        "config": str(cfg.path),
        "workspace": str(cfg.workspace),
        "datasets_dir": str(cfg.datasets_dir),
        "datasets": {n: str(d.path) for n, d in cfg.datasets.items()},
        "missing_files": missing,
        "mixes": list(cfg.mixes),
        "phases": cfg.phases,
        "model": cfg.model.__dict__,
    }
    if args.json:
        emit_json(summary)
    else:
        print(f"{cfg.path}: ok — {len(cfg.datasets)} datasets, {len(cfg.mixes)} mixes, model {cfg.model.base}")
        for name in missing:
            print(f"  warning: dataset '{name}' file not found: {cfg.datasets[name].path}")
    return 0
