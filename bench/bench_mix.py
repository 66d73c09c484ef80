"""Mix build benchmark: `bench.baselines.plain_mix_build` vs `core.mix.build`, same run.

    .venv/bin/python bench/bench_mix.py [--workspace DIR] [--mix NAME] [--reps 5]

Without --workspace a demo workspace (6 datasets, 63,212 records, ~72 MB) is generated in a
temporary directory; the default mix is the locked `zelda_16b_mix_v1` (all six datasets).
Variants, each repetition in a fresh interpreter (see bench/_harness.py for how time and peak
RSS are measured):

* plain          - baseline: `plain_mix_build` as it is in bench/baselines.py (parse every line
                   into a dict, shuffle, json.dumps), result kept in memory: it writes nothing.
* plain + write  - the same, then its three outputs written to files (no fsync): what a
                   one-file tool built on it would also do. Shown for reference; the speed-up
                   column is against the stricter in-memory baseline.
* ours           - `core.mix.build()` into a fresh output directory: train/eval/val.jsonl,
                   eval_sources.txt and metadata.json, each output fsynced, then the atomic
                   rename. Worker processes are started and shut down inside the timed region.

All variants read the datasets from the OS page cache (an untimed warm-up run reads them
first). The script checks that ours wrote exactly the baseline's bytes (sha256 of each output).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _harness as h  # noqa: E402

OUTPUTS = ("train.jsonl", "eval.jsonl", "val.jsonl")


def child(variant: str, config: Path, mix_name: str) -> None:
    from bench.baselines import plain_mix_build
    from zelda_tui.core import mix as mix_mod
    from zelda_tui.core.config import load

    cfg = load(config)
    spec = cfg.mix(mix_name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        if variant in ("plain", "plain-write"):
            paths = [(n, cfg.dataset(n).path) for n in spec.datasets]
            t0 = time.perf_counter()
            outputs = plain_mix_build(paths, spec.seed, spec.eval_fraction, spec.min_eval_samples)
            if variant == "plain-write":
                out.mkdir()
                for name, data in outputs.items():
                    (out / name).write_bytes(data)
            seconds = time.perf_counter() - t0
            digests = {name: hashlib.sha256(data).hexdigest() for name, data in outputs.items()}
        elif variant == "ours":
            t0 = time.perf_counter()
            meta = mix_mod.build(cfg, spec, out)
            seconds = time.perf_counter() - t0
            digests = {name: meta["sha256"][name] for name in OUTPUTS}
            for name in OUTPUTS:  # the metadata must describe the files really written
                assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digests[name], name
        else:
            raise SystemExit(f"unknown variant {variant}")
    h.child_result(seconds, sha256=digests)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, help="workspace dir (with config.toml) or a config.toml path")
    ap.add_argument("--mix", default="zelda_16b_mix_v1")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.config, args.mix)
        return

    with tempfile.TemporaryDirectory(prefix="zelda-bench-mix-") as tmp:
        if args.workspace:
            config = args.workspace / "config.toml" if args.workspace.is_dir() else args.workspace
        else:
            print("generating demo workspace ...", file=sys.stderr)
            config = h.demo_workspace(Path(tmp))
        script = Path(__file__).resolve()
        common = ["--config", str(config), "--mix", args.mix]
        print(f"machine: {h.machine()}; load average before: {h.loadavg()}", file=sys.stderr)
        runs = h.run_all(script, [("plain", common), ("plain-write", common), ("ours", common)], args.reps)
        load_after = h.loadavg()

    identical = all(r.extra["sha256"] == runs["plain"][0].extra["sha256"] for rs in runs.values() for r in rs)
    print(f"\n## Mix build `{args.mix}` ({time.strftime('%Y-%m-%d')}, {h.machine()}, load avg after: {load_after})\n")
    print(f"workspace: {config}; {args.reps} reps per variant, fresh process each\n")
    print(
        h.table(
            [("plain", runs["plain"]), ("plain + write files", runs["plain-write"]), ("ours", runs["ours"])],
            baseline="plain",
        )
    )
    print(f"\noutputs byte-identical to the baseline (sha256 of train/eval/val): {'yes' if identical else 'NO'}")
    base = h.median([r.seconds for r in runs["plain"]])
    ours = h.median([r.seconds for r in runs["ours"]])
    base_mem = h.median([r.peak_rss for r in runs["plain"]])
    ours_mem = h.median([r.peak_rss for r in runs["ours"]])
    print(f"targets: >= 3x baseline: {base / ours:.2f}x ({'met' if base / ours >= 3 else 'NOT met'}); "
          f"lower peak memory: {ours_mem / 2**20:.0f} MB vs {base_mem / 2**20:.0f} MB "
          f"({'met' if ours_mem < base_mem else 'NOT met'})")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
