"""Offer query benchmark: parse + filter + sort of 10,000 synthetic offers, `core.offer_query` vs a naive
interpreter, same run.

    .venv/bin/python bench/bench_offers.py [--offers 10000] [--reps 20] [--seed 7]

Unlike bench_qa/bench_mix this runs in-process: the work is ~milliseconds of pure Python on data
already in memory, so a fresh interpreter per repetition would measure start-up, not the query.
Each repetition times `parse(query)` + `filter_offers` + `sort_offers` together with
`time.perf_counter()`; variants are interleaved (naive, ours, naive, ours, ...), after one untimed
warm-up round, with the garbage collector left on (the TUI runs with it on). The table shows the
median and min–max of `--reps` repetitions.

* naive - the obvious implementation, in this file: re-tokenise the query with a regex, look every
          field up through `Offer.field()` per offer, dispatch each operator through a dict, match
          `gpu_name` with a word-boundary regex per offer, sort with `functools.cmp_to_key`.
* ours  - `core.offer_query`: the query compiled once into closures (attribute getters, pre-lowered
          strings, a per-name cache of gpu_name words), one stable `list.sort` per key.

Three cases: the default filter (~25% kept), a broad five-condition filter with a raw field (~40% kept) and a
two-key sort, and a filter that keeps everything with a three-key sort on a string column and a
column with None values (the worst case for the sort). The script checks both variants return the
same offers in the same order. Target: ours < 30 ms per case for 10,000 offers.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _harness as h  # noqa: E402
from zelda_tui.core.offer_query import DEFAULT_QUERY, filter_offers, parse, sort_offers  # noqa: E402
from zelda_tui.core.offers import Offer  # noqa: E402

TARGET_S = 0.030
CASES = [
    ("default filter, sort dph", DEFAULT_QUERY, "dph_total"),
    (
        "broad filter, sort gpu_ram-,dph",
        "num_gpus>=1 reliability>0.5 dph<40 gpu_name notin [L4,A10] verified=true",
        "gpu_ram-,dph_total",
    ),
    ("keep all, sort gpu_name,-reliability,dph", "dph_total>0", "gpu_name,-reliability,dph"),
]

GPUS = [  # (name, GB per GPU) as providers spell them
    ("A100 SXM4", 80), ("A100 SXM4", 40), ("A100 PCIE", 40), ("NVIDIA A100 80GB", 80), ("NVIDIA A100", 80),
    ("H100 SXM", 80), ("H100 NVL", 94), ("NVIDIA H100 80GB", 80), ("RTX 4090", 24), ("RTX 3090", 24),
    ("RTX A6000", 48), ("L40S", 48), ("L4", 24), ("A10", 24), ("RTX A1000", 8), ("A100-80GB", 80),
]
PLACES = ["Sweden, SE", "Georgia, US", "Iowa, US", "Czechia, CZ", "us-central1-a", "europe-west4-a", "ewr", "sea"]


def synthetic_offers(n: int, seed: int) -> list[Offer]:
    rnd = random.Random(seed)
    offers = []
    for i in range(n):
        name, gb = rnd.choice(GPUS)
        gpus = rnd.choice([1, 1, 1, 2, 2, 4, 8])
        provider = rnd.choice(["vast", "vast", "vast", "gcp", "vultr"])
        offers.append(
            Offer(
                provider=provider, id=str(20_000_000 + i), gpu_name=name, num_gpus=gpus, gpu_ram=float(gb),
                cpu_cores=float(rnd.choice([8, 16, 32, 64])) * gpus, cpu_ram=float(rnd.choice([64, 128, 256])) * gpus,
                disk_space=float(rnd.randint(50, 2000)), dph_total=round(rnd.uniform(0.1, 4.0) * gpus, 4),
                region=rnd.choice(PLACES),
                reliability=None if provider != "vast" or rnd.random() < 0.1 else round(rnd.uniform(0.8, 1.0), 5),
                inet_down=float(rnd.randint(50, 10_000)), inet_up=float(rnd.randint(50, 10_000)),
                verified=rnd.random() < 0.8 if provider == "vast" else None,  # drawn first, as when it was in raw
                raw={"cuda_max_good": rnd.choice([11.8, 12.2, 12.4, 12.8])} if provider == "vast" else {},
            )
        )
    return offers


# --------------------------------------------------------------------------- the naive baseline

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|==|=|<|>|\s(?:notin|nin|in)\s)\s*(\[[^\]]*\]|\S+)")
_ALIASES = {"dph": "dph_total"}
_OPS = {
    "=": "eq", "==": "eq", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte",
    "in": "in", "notin": "notin", "nin": "notin",
}


def _naive_value(tok: str):
    low = tok.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok)
    except ValueError:
        return tok.replace("_", " ")


def _naive_cmp(field: str, op: str, have, want) -> bool:
    if have is None:
        return op in ("neq", "notin")
    if field == "gpu_name" and op in ("eq", "neq", "in", "notin"):
        wants = want if isinstance(want, list) else [want]
        words = have.lower().replace("-", " ").replace("_", " ")
        hit = any(re.search(r"(?<!\S)" + re.escape(str(w).lower()) + r"(?!\S)", words) for w in wants)
        return hit if op in ("eq", "in") else not hit
    if isinstance(have, str):
        have = have.lower()
        want = [str(w).lower() for w in want] if isinstance(want, list) else str(want).lower()
    fns = {
        "eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
    }
    return fns[op](have, want)


def naive_filter_sort(offers: list[Offer], query: str, spec: str) -> list[Offer]:
    conds = []
    for m in _TOKEN.finditer(query):
        field, op, val = m.group(1), _OPS[m.group(2).strip()], m.group(3)
        value = [_naive_value(v.strip()) for v in val[1:-1].split(",")] if val.startswith("[") else _naive_value(val)
        conds.append((_ALIASES.get(field, field), op, value))
    kept = [o for o in offers if all(_naive_cmp(f, op, o.field(f), v) for f, op, v in conds)]
    keys = []
    for part in spec.split(","):
        desc = part.startswith("-") or part.endswith("-")
        keys.append((_ALIASES.get(part.strip("-"), part.strip("-")), desc))

    def cmp(a: Offer, b: Offer) -> int:
        for f, desc in keys:
            x, y = a.field(f), b.field(f)
            if x is None or y is None:
                if x is None and y is None:
                    continue
                return 1 if x is None else -1
            if isinstance(x, str):
                x, y = x.lower(), y.lower()
            if x != y:
                r = -1 if x < y else 1
                return -r if desc else r
        return 0

    return sorted(kept, key=functools.cmp_to_key(cmp))


def ours(offers: list[Offer], query: str, spec: str) -> list[Offer]:
    return sort_offers(filter_offers(offers, parse(query)), spec)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    offers = synthetic_offers(args.offers, args.seed)
    print(f"# offer query: parse + filter + sort, {args.offers:,} synthetic offers (seed {args.seed})")
    print(f"# {h.machine()}, load average {h.loadavg()}, pid {os.getpid()}, {args.reps} repetitions, in-process")
    print()
    variants = [("naive", naive_filter_sort), ("ours", ours)]
    results: dict[tuple[str, str], list[float]] = {}
    kept: dict[str, int] = {}
    for case, query, spec in CASES:
        a, b = naive_filter_sort(offers, query, spec), ours(offers, query, spec)  # warm-up + agreement check
        if [o.id for o in a] != [o.id for o in b]:
            raise SystemExit(f"variants disagree on {case!r}: {len(a)} vs {len(b)} offers")
        kept[case] = len(b)
        for _ in range(args.reps):
            for name, fn in variants:
                gc.collect()
                t0 = time.perf_counter()
                fn(offers, query, spec)
                results.setdefault((case, name), []).append(time.perf_counter() - t0)

    lines = [
        "| case (offers kept) | variant | median time | min–max | speed-up vs naive | target < 30 ms |",
        "|---|---|---:|---:|---:|---|",
    ]
    met_all = True
    for case, query, spec in CASES:
        base = statistics.median(results[(case, "naive")])
        for name, _ in variants:
            secs = results[(case, name)]
            med = statistics.median(secs)
            target = ""
            if name == "ours":
                ok = med < TARGET_S
                met_all &= ok
                target = "**met**" if ok else "**not met**"
            lines.append(
                f"| {case} ({kept[case]:,}) | {name} | {med * 1000:.1f} ms | {min(secs) * 1000:.1f} ms–"
                f"{max(secs) * 1000:.1f} ms | {base / med:.2f}x | {target} |"
            )
    print("\n".join(lines))
    print()
    for case, query, spec in CASES:
        print(f"- {case}: query `{query}`, sort `{spec}`")
    print()
    print(f"Results identical (ids and order) for both variants: yes. Target < 30 ms for every case: "
          f"{'**met**' if met_all else '**not met**'}.")


if __name__ == "__main__":
    main()
