"""Start-up benchmark: from a fresh interpreter to the first paint of the Inventory, same run.

    .venv/bin/python bench/bench_startup.py [--workspace DIR] [--reps 9] [--baseline-rev REV]

Without --workspace the demo workspace (`services.demo.init_demo`, what `zelda-tui demo init`
writes) is generated in a temporary directory. Each repetition of each variant is a fresh
`python bench/bench_startup.py --child VARIANT` (see bench/_harness.py); its clock starts at
the script's first line, before any import (the interpreter's own start-up, ~20 ms, is the
same for every variant and not included), and stops when the Inventory screen says it is
ready: the app imported, `build_services` done, the app mounted, the inventory scan answered
from state.sqlite and its rows in the table. The app runs under Textual's headless driver
(`App.run_test`), so the terminal's own drawing is not included either.

* ours         - `zelda_tui.app` as it is.
* eager-ssh    - baseline: the same, after importing what start-up loaded before SSH became
                 lazy (`backends.ssh` and `backends.remote_tail`, i.e. paramiko and
                 cryptography); everything else identical.
* rev:REV      - with --baseline-rev: the same child over `git archive REV zelda_tui` (e.g.
                 the commit before a start-up change), imported ahead of the working tree.

Every variant also reports which of paramiko / httpx / backends.ssh / backends.providers were
loaded at first paint. The dataset scan is warm in every timed run: an untimed warm-up run
per variant fills state.sqlite first (a cold scan of the 72 MB demo is bench_qa's subject).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # noqa: E402  before every other import: they are what is measured

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

WATCHED = ("paramiko", "httpx", "zelda_tui.backends.ssh", "zelda_tui.backends.providers")
EAGER = ("zelda_tui.backends.ssh", "zelda_tui.backends.remote_tail")  # what start-up imported before


def child(variant: str, config: Path, tree: Path | None) -> None:
    if tree is not None:
        sys.path.insert(0, str(tree))  # the archived package wins over the working tree's
    if variant == "eager-ssh":
        import importlib

        for name in EAGER:
            importlib.import_module(name)
    import asyncio

    from zelda_tui.app import ZeldaApp
    from zelda_tui.services import build_services

    services = build_services(config)
    imported = time.perf_counter() - T0
    painted: list[float] = []

    async def first_paint() -> None:
        app = ZeldaApp(services)
        async with app.run_test(size=(110, 32)):
            while type(app.screen).__name__ != "InventoryScreen" or not getattr(app.screen, "ready", False):
                await asyncio.sleep(0.002)
            painted.append(time.perf_counter() - T0)
            loaded = [m for m in WATCHED if m in sys.modules]
            rows = len(app.screen.query_one("DataTable").rows)
            painted.extend([loaded, rows])  # type: ignore[list-item]

    asyncio.run(first_paint())
    services.close()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import _harness as h

    seconds, loaded, rows = painted
    h.child_result(seconds, import_s=round(imported, 4), loaded=loaded, rows=rows)


def archive(rev: str, into: Path) -> Path:
    """`git archive REV zelda_tui` unpacked under `into` (no worktree, nothing in .git changes)."""
    repo = Path(__file__).resolve().parent.parent
    tar = subprocess.run(["git", "-C", str(repo), "archive", rev, "zelda_tui"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, help="workspace dir (with config.toml) or a config.toml path")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--baseline-rev", help="also time the app of this git revision (e.g. the commit before a change)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.config, args.tree)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import _harness as h

    with tempfile.TemporaryDirectory(prefix="zelda-bench-startup-") as tmp:
        tmp = Path(tmp)
        if args.workspace:
            config = args.workspace / "config.toml" if args.workspace.is_dir() else args.workspace
        else:
            print("generating demo workspace ...", file=sys.stderr)
            from zelda_tui.services.demo import init_demo

            config = init_demo(tmp / "ws")
        script = Path(__file__).resolve()
        common = ["--config", str(config)]
        variants = [("eager-ssh", common), ("ours", common)]
        if args.baseline_rev:
            tree = archive(args.baseline_rev, Path(tempfile.mkdtemp(dir=tmp)))
            variants.insert(0, (f"rev:{args.baseline_rev}", [*common, "--tree", str(tree)]))
        print(f"machine: {h.machine()}; load average before: {h.loadavg()}", file=sys.stderr)
        runs = h.run_all(script, variants, args.reps, warmup=1)
        load_after = h.loadavg()

    print(f"\n## Start-up to first paint of the Inventory ({time.strftime('%Y-%m-%d')}, {h.machine()}, "
          f"load avg after: {load_after})\n")
    print(f"workspace: {config}; {args.reps} reps per variant, fresh process each\n")
    print(h.table([(name, runs[name]) for name, _ in variants], baseline="eager-ssh"))
    print()
    for name, _ in variants:
        first = runs[name][0].extra
        imp = h.median([r.extra["import_s"] for r in runs[name]])
        print(f"- {name}: import + build_services {imp:.3f} s (median); {first['rows']} dataset rows painted; "
              f"loaded at first paint: {', '.join(first['loaded']) or 'none of ' + ', '.join(WATCHED)}")
    ours = h.median([r.seconds for r in runs["ours"]])
    print(f"\ntarget: first paint < 1.0 s: {ours:.3f} s ({'met' if ours < 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
