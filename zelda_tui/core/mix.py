"""The mix builder: the locked `zelda_16b_mix_v1` algorithm, byte-for-byte, done fast.

Contract (DESIGN.md): `rng = random.Random(seed)`; per dataset in listed order, parse records
(skipping blank lines and parse errors), `rng.shuffle(records)`, `n_eval = int(round(n *
eval_fraction))` raised to `min_eval_samples` and capped at n; eval = first n_eval, train =
rest; then `rng.shuffle(train)`, `rng.shuffle(eval)`; each record written as
`json.dumps(record, ensure_ascii=True) + "\n"`.

Why it is fast and small: `random.shuffle`'s permutation depends only on the list length and
the rng state, so we never keep parsed records. Worker processes turn each line into its
final serialised bytes (parse + dump), the parent shuffles lists of those bytes with the same
rng calls as the original and streams them out. Lines that are JSON but not objects are
skipped and counted as parse errors (the trainer could not use them).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import orjson

from .config import Config, MixSpec
from .errors import ZeldaError
from .inventory import CHUNK_BYTES, INLINE_BYTES, Inventory, make_pool
from .jsonl import Chunk, JSONDecodeError, chunks, read_chunk, split_lines

OUTPUTS = ("train.jsonl", "eval.jsonl", "val.jsonl")
EVAL_SOURCES = "eval_sources.txt"  # one dataset name per eval.jsonl line (per-dataset eval loss)
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class DatasetSplit:
    name: str
    path: str
    total: int
    train: int
    eval: int
    parse_errors: int
    ratio_percent: float = 0.0


@dataclass
class MixPlan:
    """Counts and ratios of a mix: what preview shows and what build writes into metadata."""

    mix: MixSpec
    datasets: list[DatasetSplit] = field(default_factory=list)

    @property
    def total_train(self) -> int:
        return sum(d.train for d in self.datasets)

    @property
    def total_eval(self) -> int:
        return sum(d.eval for d in self.datasets)

    @property
    def total_records(self) -> int:
        return sum(d.total for d in self.datasets)

    @property
    def parse_errors_total(self) -> int:
        return sum(d.parse_errors for d in self.datasets)

    def to_json(self) -> dict:
        return {
            "name": self.mix.name,
            "seed": self.mix.seed,
            "eval_fraction": self.mix.eval_fraction,
            "min_eval_samples": self.mix.min_eval_samples,
            "datasets": [d.__dict__ for d in self.datasets],
            "total_train": self.total_train,
            "total_eval": self.total_eval,
            "total_records": self.total_records,
            "parse_errors_total": self.parse_errors_total,
        }


def n_eval_for(n: int, mix: MixSpec) -> int:
    return min(max(int(round(n * mix.eval_fraction)), mix.min_eval_samples), n)


def plan(mix: MixSpec, counts: list[tuple[str, str, int, int]]) -> MixPlan:
    """Split counts for (name, path, records, parse_errors) rows, in mix order."""
    result = MixPlan(mix)
    for name, path, total, errors in counts:
        n_eval = n_eval_for(total, mix)
        result.datasets.append(DatasetSplit(name, path, total, total - n_eval, n_eval, errors))
    grand = result.total_records
    for d in result.datasets:
        d.ratio_percent = round(d.total / grand * 100, 2) if grand else 0.0
    return result


def _check_files(config: Config, mix: MixSpec) -> None:
    for name in mix.datasets:
        path = config.dataset(name).path
        if not path.is_file():
            raise ZeldaError(f"mix '{mix.name}': dataset '{name}' file not found: {path}")


def preview(config: Config, inventory: Inventory, mix: MixSpec, pool: Executor | None = None) -> MixPlan:
    """Counts and ratios from the (cached) inventory; writes nothing but the QA cache."""
    _check_files(config, mix)
    reports = {r.name: r for r in inventory.scan(list(mix.datasets), pool=pool)}
    rows = []
    for name in mix.datasets:
        r = reports[name]
        if r.error:
            raise ZeldaError(f"mix '{mix.name}': dataset '{name}': {r.error}")
        q = r.qa
        rows.append((name, r.path, q["records"], q["parse_errors"]["count"] + q["not_object"]["count"]))
    return plan(mix, rows)


# --- canonical fast path ---------------------------------------------------------------
# A line already in the exact form `json.dumps(obj, ensure_ascii=True)` would give (a flat
# object of strings, ints, booleans and nulls, ", " / ": " separators, only the escapes the
# encoder emits, lowercase \u escapes for what it does not print raw) is written as-is.
# Most datasets are written by json.dumps, so most lines skip parse + dump entirely.
# Anything else (floats, nesting, other spacing, CRLF, duplicate keys) takes the exact path.
_STR = (
    rb'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]++'  # printable ASCII except " and \
    rb'|\\["\\bfnrt]'  # the short escapes json emits
    rb'|\\u(?!00(?:[2-6][0-9a-f]|7[0-9a-e]|0[89acd]))[0-9a-f]{4})*+"'  # other chars, lowercase hex
)
_SCALAR = rb"(?:" + _STR + rb"|0|-?[1-9][0-9]{0,4000}|true|false|null)"
_CANONICAL = re.compile(rb"\{(?:" + _STR + rb": " + _SCALAR + rb"(?:, " + _STR + rb": " + _SCALAR + rb")*)?\}")
_FIRST_KEY = re.compile(rb"\{(" + _STR + rb"): ")
_NEXT_KEYS = re.compile(rb", (" + _STR + rb"): ")  # literal prefix: re scans for ", " fast


def serialise_chunk(chunk: Chunk) -> tuple[list[bytes], int]:
    """Each valid record of a chunk as its final output line (no newline); plus the error count."""
    out: list[bytes] = []
    append = out.append
    errors = 0
    dumps, parse = json.dumps, json.loads  # json, not orjson: orjson turns >64-bit ints into floats
    canonical, first_key, next_keys = _CANONICAL.fullmatch, _FIRST_KEY.match, _NEXT_KEYS.findall
    for raw in split_lines(read_chunk(chunk)):
        if canonical(raw):
            # duplicate keys collapse in json.loads, so such a line is not canonical. A ", " inside
            # a value can add a false key here (never hide one): that only sends it the slow way.
            keys = next_keys(raw)
            first = first_key(raw)
            if first is not None:
                keys.append(first.group(1))
            if len(keys) == len(set(keys)):
                append(raw)
                continue
        try:
            rec = parse(raw)
        except JSONDecodeError:
            if raw.strip():
                errors += 1
            continue
        if type(rec) is not dict:
            errors += 1
            continue
        append(dumps(rec, ensure_ascii=True).encode("ascii"))
    return out, errors


def build(
    config: Config,
    mix: MixSpec,
    out_dir: Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    pool: Executor | None = None,
) -> dict:
    """Build the bundle into `out_dir` (default mixes/<name>) atomically; returns metadata."""
    out_dir = Path(out_dir) if out_dir else config.mix_dir(mix.name)
    _recover(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ZeldaError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ZeldaError(f"{out_dir}: output directory is not empty (use --overwrite to replace the bundle)")
    _check_files(config, mix)
    specs = [config.dataset(n) for n in mix.datasets]
    sizes = [s.path.stat().st_size for s in specs]
    total_bytes = sum(sizes)

    own_pool = None
    if pool is None and total_bytes > INLINE_BYTES and (os.cpu_count() or 1) > 1:
        pool = own_pool = make_pool()
    try:
        parts = os.cpu_count() or 1
        jobs = []
        for spec, size in zip(specs, sizes):
            n = max(parts if size > CHUNK_BYTES else 1, -(-size // CHUNK_BYTES))
            cs = chunks(spec.path, size, n)
            jobs.append([(c, pool.submit(serialise_chunk, c) if pool else None) for c in cs])

        rng = random.Random(mix.seed)
        train: list[bytes] = []
        evals: list[bytes] = []
        eval_src: list[str] = []
        rows = []
        done = 0
        for spec, job in zip(specs, jobs):
            records: list[bytes] = []
            errors = 0
            for c, fut in job:
                lines, errs = fut.result() if fut else serialise_chunk(c)
                records.extend(lines)
                errors += errs
                done += c.end - c.start
                if progress:
                    progress("read", done, total_bytes)
            rng.shuffle(records)
            n_eval = n_eval_for(len(records), mix)
            evals.extend(records[:n_eval])
            eval_src.extend([spec.name] * n_eval)
            train.extend(records[n_eval:])
            rows.append((spec.name, str(spec.path), len(records), errors))
            del records
    finally:
        if own_pool is not None:
            own_pool.shutdown()

    rng.shuffle(train)
    # The eval side file must follow eval.jsonl's order: shuffle (record, source) pairs with
    # the same rng call the original made on the bare list (same length => same permutation).
    paired = list(zip(evals, eval_src))
    rng.shuffle(paired)
    evals = [p[0] for p in paired]
    eval_src = [p[1] for p in paired]
    del paired

    result = plan(mix, rows)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        digests = {}
        n_total = len(train) + 2 * len(evals)
        written = 0
        for name, lines in (("train.jsonl", train), ("eval.jsonl", evals), ("val.jsonl", evals)):
            h = hashlib.sha256()
            with open(tmp / name, "wb", buffering=1 << 20) as fh:
                for i in range(0, len(lines), 4096):
                    block = b"\n".join(lines[i : i + 4096]) + b"\n"
                    h.update(block)
                    fh.write(block)
                    written += min(4096, len(lines) - i)
                    if progress:
                        progress("write", written, n_total)
                fh.flush()
                os.fsync(fh.fileno())
            digests[name] = h.hexdigest()
        src_bytes = "".join(f"{s}\n" for s in eval_src).encode()
        (tmp / EVAL_SOURCES).write_bytes(src_bytes)
        digests[EVAL_SOURCES] = hashlib.sha256(src_bytes).hexdigest()
        metadata = _metadata(config, result, digests)
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metadata


def _metadata(config: Config, result: MixPlan, digests: dict[str, str]) -> dict:
    mix = result.mix
    return {
        "name": mix.name,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": mix.seed,
        "eval_fraction": mix.eval_fraction,
        "min_eval_samples": mix.min_eval_samples,
        "datasets_root": str(config.datasets_dir),
        "datasets": [d.__dict__ for d in result.datasets],
        "total_train": result.total_train,
        "total_eval": result.total_eval,
        "total_records": result.total_records,
        "parse_errors_total": result.parse_errors_total,
        "outputs": {"train": "train.jsonl", "eval": "eval.jsonl", "val": "val.jsonl", "eval_sources": EVAL_SOURCES},
        "notes": "val.jsonl is a copy of eval.jsonl; eval_sources.txt names the dataset of each eval line.",
        "sha256": digests,
    }


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace out_dir by tmp with two renames; `_recover` repairs a kill between them."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if out_dir.exists():
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _recover(out_dir: Path) -> None:
    """A build killed between the renames left the previous bundle as .NAME.old: put it back."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    if old.is_dir() and not out_dir.exists():
        os.rename(old, out_dir)
    for stale in out_dir.parent.glob(f".{out_dir.name}.build-*") if out_dir.parent.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)


def read_metadata(bundle: Path) -> dict:
    path = Path(bundle) / "metadata.json"
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ZeldaError(f"{path}: no metadata.json (not a built mix bundle)") from None
    except orjson.JSONDecodeError as exc:
        raise ZeldaError(f"{path}: corrupt metadata.json ({exc})") from None
