"""Shared benchmark machinery: run one variant in a fresh interpreter and watch its memory.

How a measurement works
-----------------------
* Every repetition of every variant is a fresh `python bench/<script>.py --child VARIANT ...`
  process, so nothing (imports, a warm process pool, malloc arenas, a SQLite page cache) is
  shared between variants or repetitions. The OS page cache is shared: the dataset files are
  read once in an untimed warm-up run, so every timed run reads them from RAM. `os.sync()`
  runs before each child, so no earlier writes (a just-generated demo workspace: 72 MB)
  are being flushed to disk while it runs.
* Time is measured inside the child with `time.perf_counter()` around the work itself: module
  imports and config loading happen before the clock starts, for the baseline and for ours
  alike; starting (and shutting down) our worker processes happens inside the clock.
* Peak memory is measured from outside by this (parent) process: every ~5 ms it walks the
  child's whole process tree (`/proc/PID/task/TID/children`, recursively, so the forkserver,
  its worker processes and multiprocessing's resource tracker are included) and sums the
  resident set size (`/proc/PID/statm`, field 2, times the page size) of every process in it.
  The peak is the largest such sum seen. Shared pages (the Python binary, libraries, the copy-
  on-write pages a forked worker shares with its forkserver) are counted once per process,
  so for multi-process variants this overstates real memory use; it never understates it.
  The child's own `ru_maxrss` is reported too and the peak is never below it, so a spike
  shorter than the sampling interval in the main process cannot be missed.
* Sampling costs the parent ~2-4% of one core. A single-process baseline leaves the other
  core idle for it; our variants use every core, so the sampler slows them, not the baseline.
* Variants run interleaved (baseline, ours, baseline, ours, ...) so slow drift on a shared
  machine hits all of them alike; the table shows the median time and the median peak.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_S = 0.005


def ensure_repo_on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def tree_rss(root: int) -> int:
    """Sum of RSS (bytes) over `root` and all its descendants."""
    total = 0
    stack = [root]
    seen = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue  # exited between listing and reading
        stack.extend(_children(pid))
    return total


@dataclass
class Run:
    variant: str
    seconds: float
    peak_rss: int
    extra: dict = field(default_factory=dict)


def run_child(script: Path, variant: str, args: list[str]) -> Run:
    """Run `script --child variant args` and sample its process tree until it exits."""
    cmd = [sys.executable, str(script), "--child", variant, *args]
    os.sync()  # no dirty pages of an earlier step (the demo data, say) flushing during this run
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdout=out, stderr=errf, cwd=REPO)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(SAMPLE_S)
        out.seek(0)
        errf.seek(0)
        text = out.read().decode()
        err = errf.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"variant {variant} failed (exit {proc.returncode}):\n{err}{text}")
    result = json.loads(text.strip().splitlines()[-1])
    peak = max(peak, result.pop("ru_maxrss_kb", 0) * 1024)
    return Run(variant, result.pop("seconds"), peak, result)


def child_result(seconds: float, **extra) -> None:
    """Called by a child as its last act: one JSON line on stdout."""
    import resource

    extra["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, **extra}))


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {sys.version.split()[0]}"


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def run_all(script: Path, variants: list[tuple[str, list[str]]], reps: int, warmup: int = 1) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {v: [] for v, _ in variants}
    for _ in range(warmup):
        for variant, args in variants:
            run_child(script, variant, args)
    for i in range(reps):
        for variant, args in variants:
            r = run_child(script, variant, args)
            runs[variant].append(r)
            print(f"  rep {i + 1}/{reps} {variant:<28} {r.seconds:8.3f} s  {r.peak_rss / 2**20:7.1f} MB", file=sys.stderr)
    return runs


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def table(rows: list[tuple[str, list[Run]]], baseline: str, not_comparable: tuple[str, ...] = ()) -> str:
    """Markdown table: variant, median s (min-max), peak RSS MB (median / max), speed-up vs baseline.

    Rows named in `not_comparable` (a warm cache hit, say) get no speed-up: it would compare
    a lookup with a full scan.
    """
    base = median([r.seconds for r in dict(rows)[baseline]])
    lines = [
        "| variant | median time | min–max | peak RSS MB (median / max) | speed-up vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, runs in rows:
        secs = [r.seconds for r in runs]
        peaks = [r.peak_rss / 2**20 for r in runs]
        speed = "n/a (not comparable)" if name in not_comparable else f"{base / median(secs):.2f}x"
        lines.append(
            f"| {name} | {_fmt(median(secs))} | {_fmt(min(secs))}–{_fmt(max(secs))} | "
            f"{median(peaks):.0f} / {max(peaks):.0f} | {speed} |"
        )
    return "\n".join(lines)


def demo_workspace(tmp: Path) -> Path:
    """A fresh demo workspace (the realistic 6-dataset, 63k-record set) under `tmp`."""
    ensure_repo_on_path()
    from zelda_tui.demo.workspace import init_workspace

    return init_workspace(tmp / "ws")
