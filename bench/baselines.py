"""Plain baselines: the straightforward code the benchmarks compare against.

`plain_mix_build` is the original locked-mix tool's algorithm written the obvious way (parse
everything into dicts, shuffle, dump); the tests also use it as the reference our fast build
must match byte for byte. `plain_qa` computes the same QA statistics with a json.loads loop.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path


def plain_mix_build(paths: list[tuple[str, Path]], seed: int, eval_fraction: float, min_eval_samples: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    train: list = []
    evals: list = []
    for _name, path in paths:
        records = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(rec, dict):
                    continue
                records.append(rec)
        rng.shuffle(records)
        n_eval = int(round(len(records) * eval_fraction))
        n_eval = max(n_eval, min_eval_samples)
        n_eval = min(n_eval, len(records))
        evals.extend(records[:n_eval])
        train.extend(records[n_eval:])
    rng.shuffle(train)
    rng.shuffle(evals)

    def dump(rows: list) -> bytes:
        return "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows).encode("ascii")

    ev = dump(evals)
    return {"train.jsonl": dump(train), "eval.jsonl": ev, "val.jsonl": ev}


def plain_qa(path: Path, max_seq_len: int = 4096, chars_per_token: float = 3.2) -> dict:
    """Same statistics as core.qa, one json.loads per line, single process."""
    stats = {
        "records": 0, "blank": 0, "parse_errors": [], "not_object": [], "missing": Counter(), "wrong_type": Counter(),
        "domains": Counter(), "sources": Counter(), "over_max": 0,
    }
    fields = {f: {"present": 0, "chars": 0, "max": 0, "code": 0} for f in ("instruction", "input", "output")}
    seen: set = set()
    dups = 0
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                stats["blank"] += 1
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                stats["parse_errors"].append(lineno)
                continue
            if not isinstance(rec, dict):
                stats["not_object"].append(lineno)
                continue
            stats["records"] += 1
            n = 0
            for f in ("instruction", "input", "output"):
                v = rec.get(f)
                if v is None:
                    if f != "input":
                        stats["missing"][f] += 1
                    continue
                if not isinstance(v, str):
                    stats["wrong_type"][f] += 1
                    continue
                if not v:
                    if f != "input":
                        stats["missing"][f] += 1
                    continue
                fs = fields[f]
                fs["present"] += 1
                fs["chars"] += len(v)
                fs["max"] = max(fs["max"], len(v))
                fs["code"] += "```" in v
                n += len(v)
            for f, counter in (("domain", stats["domains"]), ("source", stats["sources"])):
                if f not in rec:
                    counter["(none)"] += 1
                elif isinstance(rec[f], str):
                    counter[rec[f]] += 1
                else:
                    counter["(invalid)"] += 1
                    stats["wrong_type"][f] += 1
            if int(n / chars_per_token) + 8 > max_seq_len:
                stats["over_max"] += 1
            key = json.dumps([rec.get("instruction"), rec.get("input"), rec.get("output")])
            digest = hashlib.sha1(key.encode()).digest()
            if digest in seen:
                dups += 1
            seen.add(digest)
    stats["fields"] = fields
    stats["exact_duplicates"] = dups
    return stats
