"""QA + inventory benchmark: `bench.baselines.plain_qa` vs `Inventory.scan()`, same run.

    .venv/bin/python bench/bench_qa.py [--workspace DIR] [--reps 5]

Without --workspace a demo workspace (6 datasets, 63,212 records, ~72 MB) is generated in a
temporary directory. Variants, each repetition in a fresh interpreter (see bench/_harness.py
for how time and peak RSS are measured):

* plain        - baseline: `plain_qa` (json.loads loop, one process) over every dataset.
* ours cold    - `Inventory.scan()` with an empty SQLite store: chunked, worker processes
                 started (and shut down) inside the timed region. Token lengths are the
                 chars/token estimate, as in the baseline (no tokenizer is passed).
* ours warm (same process) - a second `scan()` right after the cold one in the same process:
                 the files are unchanged, so it is one stat() + one SQLite lookup per dataset.
                 Reported from the same child runs as "ours cold" (its memory column is that
                 of the whole run).
* ours warm (new process)  - a fresh interpreter opening the store a cold scan filled earlier:
                 the timed region is `Store(path)` (open + migrations check) and `scan()`.

Both cold variants read the datasets from the OS page cache (an untimed warm-up run reads
them first). The script checks that all variants agree on records, exact duplicates and
samples over max_seq_len, and prints the results table in markdown.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _harness as h  # noqa: E402


def child(variant: str, config: Path, state: Path | None) -> None:
    from bench.baselines import plain_qa
    from zelda_tui.core.config import load
    from zelda_tui.core.inventory import Inventory
    from zelda_tui.core.store import Store

    cfg = load(config)
    max_seq_len = cfg.model.max_seq_len
    if variant == "plain":
        paths = [spec.path for spec in cfg.datasets.values()]
        t0 = time.perf_counter()
        results = [plain_qa(p, max_seq_len) for p in paths]
        seconds = time.perf_counter() - t0
        h.child_result(
            seconds,
            records=sum(r["records"] for r in results),
            duplicates=sum(r["exact_duplicates"] for r in results),
            over_max=sum(r["over_max"] for r in results),
        )
    elif variant == "ours-cold":
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(state or Path(tmp) / "state.sqlite")
            inventory = Inventory(cfg, store, tokens=None)
            t0 = time.perf_counter()
            reports = inventory.scan()
            seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            warm = inventory.scan()
            warm_seconds = time.perf_counter() - t1
            store.close()
        assert not any(r.cached for r in reports) and all(r.cached for r in warm)
        h.child_result(seconds, warm_same_process=warm_seconds, **_totals(reports))
    elif variant == "ours-warm":
        t0 = time.perf_counter()
        store = Store(state)
        reports = Inventory(cfg, store, tokens=None).scan()
        seconds = time.perf_counter() - t0
        store.close()
        assert all(r.cached for r in reports), "warm scan re-parsed a dataset"
        h.child_result(seconds, **_totals(reports))
    else:
        raise SystemExit(f"unknown variant {variant}")


def _totals(reports) -> dict:
    return {
        "records": sum(r.qa["records"] for r in reports),
        "duplicates": sum(r.qa["exact_duplicates"] for r in reports),
        "over_max": sum(r.qa["length"]["over_max"] for r in reports),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, help="workspace dir (with config.toml) or a config.toml path")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.config, args.state)
        return

    with tempfile.TemporaryDirectory(prefix="zelda-bench-qa-") as tmp:
        tmp = Path(tmp)
        if args.workspace:
            config = args.workspace / "config.toml" if args.workspace.is_dir() else args.workspace
        else:
            print("generating demo workspace ...", file=sys.stderr)
            config = h.demo_workspace(tmp)
        state = tmp / "warm-state.sqlite"
        script = Path(__file__).resolve()
        common = ["--config", str(config)]
        print(f"machine: {h.machine()}; load average before: {h.loadavg()}", file=sys.stderr)
        # Warm-up (untimed): page cache, and the store the warm-new-process variant opens.
        h.run_child(script, "ours-cold", [*common, "--state", str(state)])
        runs = h.run_all(
            script,
            [("plain", common), ("ours-cold", common), ("ours-warm", [*common, "--state", str(state)])],
            args.reps,
        )
        load_after = h.loadavg()

    checks = {name: {k: rs[0].extra[k] for k in ("records", "duplicates", "over_max")} for name, rs in runs.items()}
    agree = len({tuple(c.values()) for c in checks.values()}) == 1
    # The same-process warm re-scan is timed inside the "ours cold" children: its memory column
    # is that whole run's peak.
    warm_same = [h.Run("ours warm (same process)", r.extra["warm_same_process"], r.peak_rss) for r in runs["ours-cold"]]
    print(f"\n## QA + inventory ({time.strftime('%Y-%m-%d')}, {h.machine()}, load avg after: {load_after})\n")
    print(f"workspace: {config}; {args.reps} reps per variant, fresh process each\n")
    print(
        h.table(
            [
                ("plain", runs["plain"]),
                ("ours cold", runs["ours-cold"]),
                ("ours warm (same process)", warm_same),
                ("ours warm (new process)", runs["ours-warm"]),
            ],
            baseline="plain",
            not_comparable=("ours warm (same process)", "ours warm (new process)"),
        )
    )
    print(f"\nresults agree across variants: {'yes' if agree else 'NO'} {checks['plain']}")
    cold = h.median([r.seconds for r in runs["ours-cold"]])
    base = h.median([r.seconds for r in runs["plain"]])
    warm = max(h.median([r.seconds for r in warm_same]), h.median([r.seconds for r in runs["ours-warm"]]))
    print(f"targets: cold >= 5x baseline: {base / cold:.2f}x ({'met' if base / cold >= 5 else 'NOT met'}); "
          f"warm re-scan < 50 ms: {warm * 1000:.1f} ms ({'met' if warm < 0.05 else 'NOT met'})")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
