"""The mix builder: the locked `zelda_16b_mix_v1` algorithm, byte-for-byte, done fast.

Contract (DESIGN.md): `rng = random.Random(seed)`; per dataset in listed order, parse records
(skipping blank lines and parse errors), `rng.shuffle(records)`, `n_eval = int(round(n *
eval_fraction))` raised to `min_eval_samples` and capped at n; eval = first n_eval, train =
rest; then `rng.shuffle(train)`, `rng.shuffle(eval)`; each record written as
`json.dumps(record, ensure_ascii=True) + "\n"`.

Why it is fast and small: `random.shuffle`'s permutation depends only on the list length and
the rng state, so we never keep parsed records, only each record's output line. Most lines
already are their own output line (see the canonical fast path); worker processes (and this
one) find the few that are not and send back only those, re-serialised, plus the count of
parse errors. This process keeps its own read of the lines, shuffles them with the same rng
calls as the original, dataset by dataset as soon as each is checked, and streams them out
while a thread hashes them. Lines that are JSON but not objects are skipped and counted as
parse errors (the trainer could not use them).

Safety: a build only ever replaces a folder that holds a bundle we wrote (only bundle files,
with our metadata.json), never a dataset folder, the workspace or anything else; and it holds
`.NAME.lock` beside the output (flock, with the builder's PID) for its whole run, so a second
build of the same output is refused ("being built by PID N") and the recovery of a crashed
build never deletes a live build's temp dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import orjson

from . import locks
from .errors import ZeldaError
from .jsonl import CHUNK_BYTES, INLINE_BYTES, Chunk, JSONDecodeError, chunks, read_chunk, run_jobs, split_lines

if TYPE_CHECKING:  # worker processes import this module: keep its imports light
    from concurrent.futures import Executor

    from .config import Config, DatasetSpec, MixSpec
    from .inventory import Inventory

OUTPUTS = ("train.jsonl", "eval.jsonl", "val.jsonl")
EVAL_SOURCES = "eval_sources.txt"  # one dataset name per eval.jsonl line (per-dataset eval loss)
METADATA = "metadata.json"
BUNDLE_FILES = (*OUTPUTS, EVAL_SOURCES, METADATA)  # all a bundle folder may hold to be replaced
Progress = Callable[[str, int, int], None]  # (phase, done, total)

SourceDigest = Callable[["DatasetSpec"], str]
"""sha256 of a dataset file; the services pass the inventory's (cached by path, size and mtime in
state.sqlite), so a rebuild or a `train start` check of unchanged data hashes nothing."""


def file_sha256(spec: DatasetSpec) -> str:
    with open(spec.path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ZeldaError(f"{path}: cannot read dataset '{name}' of mix '{mix.name}' ({exc.strerror or exc})") from None


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
# encoder emits, lowercase \u escapes for what it does not print raw, no repeated key) is
# written as-is. Most datasets are written by json.dumps, so most lines skip parse + dump.
# Anything else (floats, nesting, other spacing, CRLF) takes the exact path. Strings are
# matched as `"run (escape run)*"` (the unrolled form: fewer steps than one alternation per
# character), and the first MAX_KEYS keys are captured so repeats can be spotted.
_RUN = rb"[\x20\x21\x23-\x5b\x5d-\x7e]*+"  # printable ASCII except " and \
_ESCAPE = (
    rb'\\["\\bfnrt]'  # the short escapes json emits
    rb"|\\u(?!00(?:[2-6][0-9a-f]|7[0-9a-e]|0[89acd]))[0-9a-f]{4}"  # other chars, lowercase hex
)
_STR = rb'"' + _RUN + rb"(?:(?:" + _ESCAPE + rb")" + _RUN + rb')*+"'
_SCALAR = rb"(?:" + _STR + rb"|0|-?[1-9][0-9]{0,4000}|true|false|null)"
MAX_KEYS = 6  # keys captured one by one; a line with more has them all listed by _repeats_a_key


def _canonical_pattern(max_keys: int) -> re.Pattern[bytes]:
    """{"k1": v1, "k2": v2, ...}: key j in group j, so `lastindex` is the number of keys captured.

    The optional pairs are possessive: a pair that can match must (the next thing is ", " or
    "}", never both), which keeps the match linear on lines that are not canonical.
    """
    pair = rb"(" + _STR + rb"): " + _SCALAR
    tail = rb"(?:, " + _STR + rb": " + _SCALAR + rb")*+"
    return re.compile(rb"\{(?:" + pair + (rb"(?:, " + pair + rb")?+") * (max_keys - 1) + tail + rb")?\}")


_CANONICAL = _canonical_pattern(MAX_KEYS)
_FIRST_KEY = re.compile(rb"\{(" + _STR + rb"): ")
_NEXT_KEYS = re.compile(rb", (" + _STR + rb"): ")  # literal prefix: re scans for ", " fast

Fixes = list[tuple[int, "bytes | None"]]  # (line index, its output line, or None: not a record)


def _repeats_a_key(m: re.Match[bytes]) -> bool:
    """Whether a canonical-looking line names a key twice (json.loads keeps one: not canonical)."""
    n = m.lastindex or 0
    if n < MAX_KEYS:
        return len(set(m.groups()[:n])) != n
    raw = m.string  # maybe more keys than groups: list them all. A ", " inside a value can add
    keys = _NEXT_KEYS.findall(raw)  # a false key here (never hide one): that only costs time.
    first = _FIRST_KEY.match(raw)  # always matches: `m` matched the same line
    if first:
        keys.append(first.group(1))
    return len(keys) != len(set(keys))


def check_lines(lines: list[bytes]) -> tuple[int, Fixes]:
    """Parse errors and the lines that are not already output lines.

    Returns (parse errors, fixes): each fix is (index, json.dumps of the line's object) or
    (index, None) for a blank line, a parse error or JSON that is not an object. Lines not
    in `fixes` are written as they are.
    """
    fixes: Fixes = []
    errors = 0
    canonical = _CANONICAL.fullmatch
    dumps, parse = json.dumps, json.loads  # json, not orjson: orjson turns >64-bit ints into floats
    for i, raw in enumerate(lines):
        m = canonical(raw)
        if m is not None and not _repeats_a_key(m):
            continue
        try:
            rec = parse(raw)
        except JSONDecodeError:
            if raw.strip():
                errors += 1
            fixes.append((i, None))
            continue
        if type(rec) is not dict:
            errors += 1
            fixes.append((i, None))
            continue
        fixes.append((i, dumps(rec, ensure_ascii=True).encode("ascii")))
    return errors, fixes


def check_chunk(chunk: Chunk) -> tuple[int, int, Fixes]:
    """(lines, parse errors, fixes) of a byte range of a file: the unit of work sent to workers."""
    lines = split_lines(read_chunk(chunk))
    return (len(lines), *check_lines(lines))


def _records(lines: list[bytes], fixes: Fixes) -> list[bytes]:
    """The output lines of a chunk: its lines with the fixes applied."""
    if not fixes:
        return lines
    out: list[bytes | None] = list(lines)
    for i, fixed in fixes:
        out[i] = fixed
    return [line for line in out if line is not None]


def build(
    config: Config,
    mix: MixSpec,
    out_dir: Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    pool: Executor | None = None,
    digest: SourceDigest = file_sha256,
) -> dict:
    """Build the bundle into `out_dir` (default mixes/<name>) atomically; returns metadata.

    Reading: every file is cut into chunks; `check_chunk` runs on them in worker processes
    and in this one, and reports only the lines that are not output lines already. For a
    chunk a worker checked, this process reads the lines to write itself (from the page
    cache, cheaper than receiving them). Each dataset is shuffled as soon as it and all
    datasets before it are complete, in dataset order, so the rng calls are the original's.
    """
    out_dir = Path(os.path.abspath(out_dir)) if out_dir else config.mix_dir(mix.name)
    if not out_dir.name:
        raise ZeldaError(f"{out_dir}: cannot build a mix into the root folder")
    _check_target(config, out_dir, overwrite)  # before the lock: a refused target gets no lock file either
    _check_files(config, mix)
    with _build_lock(out_dir):
        _recover(out_dir)
        _check_target(config, out_dir, overwrite)
        return _build(config, mix, out_dir, progress, pool, digest)


def _build(config: Config, mix: MixSpec, out_dir: Path, progress: Progress | None, pool: Executor | None,
           digest: SourceDigest) -> dict:
    """The build itself, under the output's lock (see `build`)."""
    from concurrent.futures import ThreadPoolExecutor  # not at the top: workers import this module

    specs = [config.dataset(n) for n in mix.datasets]
    sizes = [s.path.stat().st_size for s in specs]
    total_bytes = sum(sizes)

    jobs: list[Chunk] = []
    owner: list[int] = []  # dataset index of each job
    for d, (spec, size) in enumerate(zip(specs, sizes)):
        for c in chunks(spec.path, size, max(1, -(-size // CHUNK_BYTES))):
            jobs.append(c)
            owner.append(d)
    lines_of: list[list[bytes] | None] = [None] * len(jobs)  # chunks this process has read
    results: list[tuple[int, int, Fixes] | None] = [None] * len(jobs)
    left = [owner.count(d) for d in range(len(specs))]

    rng = random.Random(mix.seed)
    train: list[bytes] = []
    evals: list[bytes] = []
    eval_src: list[str] = []
    rows: list[tuple[str, str, int, int]] = []
    done = 0

    def check_here(i: int) -> tuple[int, int, Fixes]:
        lines = lines_of[i] = split_lines(read_chunk(jobs[i]))
        return (len(lines), *check_lines(lines))

    def split_dataset(d: int) -> None:
        records: list[bytes] = []
        errors = 0
        for i in range(len(jobs)):
            if owner[i] != d:
                continue
            result, lines = results[i], lines_of[i]
            assert result is not None and lines is not None  # split only once every chunk of d is in
            _, errs, fixes = result
            errors += errs
            records.extend(_records(lines, fixes))
            lines_of[i] = results[i] = None
        rng.shuffle(records)
        n_eval = n_eval_for(len(records), mix)
        evals.extend(records[:n_eval])
        eval_src.extend([specs[d].name] * n_eval)
        train.extend(records[n_eval:])
        rows.append((specs[d].name, str(specs[d].path), len(records), errors))

    def on_result(i: int, result: tuple[int, int, Fixes]) -> None:
        nonlocal done
        results[i] = result
        if lines_of[i] is None:  # a worker checked it: read the lines to write now, not at the end
            lines = lines_of[i] = split_lines(read_chunk(jobs[i]))
            if len(lines) != result[0]:
                raise ZeldaError(f"{jobs[i].path}: file changed while the mix was being built")
        done += jobs[i].end - jobs[i].start
        if progress:
            progress("read", done, total_bytes)
        left[owner[i]] -= 1
        while len(rows) < len(specs) and left[len(rows)] == 0:
            split_dataset(len(rows))

    run_jobs(check_chunk, jobs, on_result, pool=pool, parallel=total_bytes > INLINE_BYTES, local=check_here)
    while len(rows) < len(specs):  # datasets with no chunks at all (empty files) come last in order
        split_dataset(len(rows))
    # The sources' digests (for `bundle_drift`), on the core the workers have left, while this one
    # shuffles and writes (from the page cache: the files were just read).
    hasher = ThreadPoolExecutor(1, thread_name_prefix="zelda-source-sha256")
    source_digests = [hasher.submit(digest, s) for s in specs]
    hasher.shutdown(wait=False)

    rng.shuffle(train)
    # The eval side file must follow eval.jsonl's order: shuffle (record, source) pairs with
    # the same rng call the original made on the bare list (same length => same permutation).
    paired = list(zip(evals, eval_src))
    rng.shuffle(paired)
    evals = [p[0] for p in paired]
    eval_src = [p[1] for p in paired]
    del paired

    result = plan(mix, rows)
    _refuse_unusable(mix, result)
    sources = {s.name: {"bytes": size, "sha256": digest.result()} for s, size, digest in zip(specs, sizes, source_digests)}
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(out_dir), dir=out_dir.parent))
    try:
        n_total = len(train) + 2 * len(evals)
        step = _Progress(progress, n_total)
        digests = {"train.jsonl": _write_lines([tmp / "train.jsonl"], train, step)}
        digests["eval.jsonl"] = digests["val.jsonl"] = _write_lines([tmp / "eval.jsonl", tmp / "val.jsonl"], evals, step)
        src_bytes = "".join(f"{s}\n" for s in eval_src).encode()
        (tmp / EVAL_SOURCES).write_bytes(src_bytes)
        digests[EVAL_SOURCES] = hashlib.sha256(src_bytes).hexdigest()
        metadata = _metadata(config, result, digests, sources)
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metadata


class _Progress:
    """("write", lines written, total) reports; a line written to two files counts twice."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, lines: int) -> None:
        self.done += lines
        if self.progress:
            self.progress("write", self.done, self.total)


WRITE_BLOCK = 4096  # lines per write


def _write_lines(paths: list[Path], lines: list[bytes], step: _Progress) -> str:
    """Write `lines` (newline-terminated) to each path and fsync; returns the content's sha256.

    Hashing runs in a thread (hashlib releases the GIL on large buffers) while this thread
    joins and writes the next block, so the digest costs little extra wall time on a second
    core. After each block the kernel is asked to start writing it out (POSIX_FADV_DONTNEED
    starts writeback of dirty pages on Linux), so the final fsync has little left to wait for.
    """
    from concurrent.futures import ThreadPoolExecutor  # not at the top: workers import this module

    h = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, "wb")) for p in paths]  # blocks bypass the buffer
        hasher = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="zelda-sha256"))
        pending = None
        at = 0
        for i in range(0, len(lines), WRITE_BLOCK):
            part = lines[i : i + WRITE_BLOCK]
            part.append(b"")  # the join then ends with a newline
            block = b"\n".join(part)
            if pending is not None:
                pending.result()
            pending = hasher.submit(h.update, block)
            for fh in files:
                fh.write(block)
                if hasattr(os, "posix_fadvise"):
                    fh.flush()
                    os.posix_fadvise(fh.fileno(), at, len(block), os.POSIX_FADV_DONTNEED)
            at += len(block)
            step((len(part) - 1) * len(files))
        if pending is not None:
            pending.result()
        for fh in files:
            fh.flush()
            os.fsync(fh.fileno())
    return h.hexdigest()


def _metadata(config: Config, result: MixPlan, digests: dict[str, str], sources: dict[str, dict]) -> dict:
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
        "sources": sources,  # each dataset file as read: {"bytes", "sha256"} (train start checks them)
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
    """A build killed between the renames left the previous bundle as .NAME.old: put it back.

    Runs under the output's lock, so the temp dirs it removes belong to dead builds only; the
    pattern is exact (mkdtemp's 8 characters), so another output's temp dir never matches.
    """
    old = out_dir.with_name(f".{out_dir.name}.old")
    if old.is_dir() and not out_dir.exists():
        os.rename(old, out_dir)
    stale = re.compile(re.escape(_temp_prefix(out_dir)) + r"[a-z0-9_]{8}")
    for entry in out_dir.parent.iterdir() if out_dir.parent.is_dir() else ():
        if stale.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def _temp_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.build-"


def lock_path(out_dir: Path) -> Path:
    """The build lock of an output folder: beside it, so it survives the folder's swap."""
    return out_dir.with_name(f".{out_dir.name}.lock")


@contextlib.contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    """One build per output folder at a time (the holder's PID inside, for the message)."""
    lock = locks.FileLock(lock_path(out_dir))
    if not lock.try_acquire():
        raise ZeldaError(f"{out_dir}: being built by PID {lock.holder_pid} (another zelda-tui); "
                         "try again when it has finished")
    try:
        yield
    finally:
        lock.release()


def _check_target(config: Config, out_dir: Path, overwrite: bool) -> None:
    """Refuse any output folder but a new or empty one, or (with overwrite) a bundle we wrote."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ZeldaError(f"{out_dir}: exists and is not a directory")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise ZeldaError(f"{out_dir}: output directory is not empty (use --overwrite to replace the bundle)")
    problem = _not_a_bundle(config, out_dir)
    if problem:
        raise ZeldaError(f"{out_dir}: not replaced: {problem}; --overwrite only replaces a mix bundle "
                         "(choose a new or empty --out folder)")


def _not_a_bundle(config: Config, out_dir: Path) -> str | None:
    """Why out_dir is not a bundle we may replace, or None."""
    real = out_dir.resolve()
    protected = [(config.workspace, "the workspace"), (config.datasets_dir, "the datasets folder"),
                 (config.path, "config.toml")]
    protected += [(d.path, f"dataset '{d.name}'") for d in config.datasets.values()]
    for path, what in protected:
        target = Path(path).resolve()
        if target == real:
            return f"it is {what}"
        if real in target.parents:
            return f"it holds {what} ({path})"
    foreign = sorted(e.name for e in out_dir.iterdir() if e.name not in BUNDLE_FILES or not e.is_file() or e.is_symlink())
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        return f"it holds files a mix build did not write ({', '.join(foreign[:3])}{more})"
    try:
        meta = orjson.loads((out_dir / METADATA).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return f"it has no readable {METADATA}"
    if not isinstance(meta, dict) or not isinstance(meta.get("outputs"), dict) or "name" not in meta:
        return f"its {METADATA} is not a mix bundle's"
    return None


def _refuse_unusable(mix: MixSpec, result: MixPlan) -> None:
    """No bundle from datasets whose every line failed to parse (a wrong file, not a small one)."""
    broken = [d for d in result.datasets if d.total == 0 and d.parse_errors > 0]
    if broken:
        names = ", ".join(f"'{d.name}' ({d.parse_errors:,} lines)" for d in broken)
        raise ZeldaError(f"mix '{mix.name}': every line of {names} failed to parse as a JSON object; nothing built")
    if result.total_records == 0:
        raise ZeldaError(f"mix '{mix.name}': no records in {', '.join(mix.datasets)}; nothing built")


def bundle_drift(config: Config, mix: MixSpec, bundle: Path, digest: SourceDigest = file_sha256) -> list[str]:
    """How a built bundle differs from the mix as config.toml says it ([]: it matches).

    Compares the dataset list, eval_fraction, min_eval_samples and seed, and each source
    file's size and sha256 when the bundle recorded them (bundles before `sources` skip that).
    """
    meta = read_metadata(bundle)
    drift = []
    built = [d.get("name") for d in meta.get("datasets", []) if isinstance(d, dict)]
    if built != list(mix.datasets):
        drift.append(f"datasets {', '.join(map(str, built)) or 'none'} instead of {', '.join(mix.datasets)}")
    for key in ("eval_fraction", "min_eval_samples", "seed"):
        if meta.get(key) != getattr(mix, key):
            drift.append(f"{key} {meta.get(key)} instead of {getattr(mix, key)}")
    sources = meta.get("sources")
    if not isinstance(sources, dict):
        sources = {}
    for name in mix.datasets:
        recorded = sources.get(name)
        if not isinstance(recorded, dict) or name not in config.datasets:
            continue
        path = config.datasets[name].path
        try:
            size = path.stat().st_size
            changed = size != recorded.get("bytes") or (recorded.get("sha256") and digest(config.datasets[name]) != recorded["sha256"])
        except OSError:
            changed = True
        if changed:
            drift.append(f"dataset '{name}' changed since the build ({path})")
    return drift


def read_metadata(bundle: Path) -> dict:
    path = Path(bundle) / METADATA
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ZeldaError(f"{path}: no metadata.json (not a built mix bundle)") from None
    except orjson.JSONDecodeError as exc:
        raise ZeldaError(f"{path}: corrupt metadata.json ({exc})") from None
