"""Inventory of the configured datasets: file facts + QA, cached by (path, size, mtime_ns).

Cold scans split every file into newline-aligned chunks and run `qa.scan_chunk` on all cores
(`jsonl.run_jobs` on a process pool); each dataset is
finished and cached as soon as its last chunk is in. A warm scan of an unchanged workspace is
one stat() and one SQLite lookup per dataset and parses nothing.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import qa
from .config import Config, DatasetSpec
from .jsonl import CHUNK_BYTES, INLINE_BYTES, Chunk, chunks, run_jobs
from .store import Store

QA_VERSION = 1
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class TokenCounting:
    """A real tokenizer injected by the caller (backends.tokenizer), or None for the estimate."""

    name: str
    count: qa.TokenCounter


@dataclass
class DatasetReport:
    name: str
    path: str
    tags: list[str]
    exists: bool
    error: str | None = None
    bytes: int = 0
    mtime: float = 0.0
    mtime_ns: int = 0
    cached: bool = False
    qa: dict = field(default_factory=dict)

    @property
    def records(self) -> int:
        return self.qa.get("records", 0)

    @property
    def problems(self) -> int:
        """Lines or records a user should look at (parse errors, non-objects, missing/wrong fields)."""
        if not self.qa:
            return 0
        q = self.qa
        return (
            q["parse_errors"]["count"]
            + q["not_object"]["count"]
            + sum(p["count"] for p in q["missing"].values())
            + sum(p["count"] for p in q["wrong_type"].values())
        )

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "tags": self.tags,
            "exists": self.exists,
            "error": self.error,
            "bytes": self.bytes,
            "mtime": self.mtime,
            "cached": self.cached,
            "problems": self.problems,
            "qa": self.qa,
        }


class Inventory:
    """Scans datasets for the Inventory screen and the `inventory`/`qa` commands."""

    def __init__(self, config: Config, store: Store, tokens: TokenCounting | None = None) -> None:
        self.config = config
        self.store = store
        self.tokens = tokens

    def _params(self) -> str:
        method = f"tok:{self.tokens.name}" if self.tokens else f"est:{qa.CHARS_PER_TOKEN}"
        return f"v{QA_VERSION}|{method}|{self.config.model.max_seq_len}"

    def scan(
        self,
        names: list[str] | None = None,
        force: bool = False,
        progress: Progress | None = None,
        pool: Executor | None = None,
    ) -> list[DatasetReport]:
        specs = [self.config.dataset(n) for n in names] if names else list(self.config.datasets.values())
        params = self._params()
        reports: list[DatasetReport] = []
        todo: list[tuple[DatasetReport, int, int]] = []
        for spec in specs:
            report = _facts(spec)
            reports.append(report)
            if not report.exists or report.error:
                continue
            size, mtime_ns = report.bytes, report.mtime_ns
            cached = None if force else self.store.qa_lookup(str(spec.path), size, mtime_ns, params)
            if cached is not None:
                report.qa, report.cached = cached, True
            else:
                todo.append((report, size, mtime_ns))
        if todo:
            self._scan_files(todo, params, progress, pool)
        elif progress:
            progress(1, 1)
        return reports

    def _scan_files(
        self, todo: list[tuple[DatasetReport, int, int]], params: str, progress: Progress | None, pool: Executor | None
    ) -> None:
        total = sum(size for _, size, _ in todo)
        keep_texts = self.tokens is not None
        jobs: list[tuple[Chunk, bool]] = []
        owner: list[int] = []  # index into todo of each job
        for t, (report, size, _) in enumerate(todo):
            for c in chunks(Path(report.path), size, max(1, -(-size // CHUNK_BYTES))):
                jobs.append((c, keep_texts))
                owner.append(t)
        parts: list[qa.ChunkStats | None] = [None] * len(jobs)
        left = [owner.count(t) for t in range(len(todo))]
        done = 0

        def on_result(i: int, part: qa.ChunkStats) -> None:
            nonlocal done
            parts[i] = part
            done += jobs[i][0].end - jobs[i][0].start
            if progress:
                progress(done, total)
            t = owner[i]
            left[t] -= 1
            if left[t] == 0:  # every chunk of this file is in: merge in file order and finish
                mine = [j for j in range(len(jobs)) if owner[j] == t]
                self._finish(todo[t], params, [p for j in mine if (p := parts[j]) is not None])  # all in
                for j in mine:
                    parts[j] = None

        parallel = total > INLINE_BYTES
        run_jobs(qa.scan_file_chunk, jobs, on_result, pool=pool, parallel=parallel)

    def _finish(self, item: tuple[DatasetReport, int, int], params: str, parts: list[qa.ChunkStats]) -> None:
        report, size, mtime_ns = item
        merged = qa.ChunkStats(texts=[] if self.tokens is not None else None)
        for part in parts:
            part.offset(merged.lines)
            merged.merge(part)
        report.qa = qa.finish(
            merged,
            self.config.model.max_seq_len,
            self.tokens.count if self.tokens else None,
            self.tokens.name if self.tokens else "",
        )
        self.store.qa_save(report.path, size, mtime_ns, params, report.qa)

    def sha256(self, spec: DatasetSpec) -> str:
        """sha256 of a dataset file, cached by (path, size, mtime_ns) like the QA."""
        st = os.stat(spec.path)
        cached = self.store.digest_lookup(str(spec.path), st.st_size, st.st_mtime_ns)
        if cached:
            return cached
        with open(spec.path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        self.store.digest_save(str(spec.path), st.st_size, st.st_mtime_ns, digest)
        return digest


def _facts(spec: DatasetSpec) -> DatasetReport:
    report = DatasetReport(name=spec.name, path=str(spec.path), tags=list(spec.tags), exists=spec.path.exists())
    if not report.exists:
        report.error = f"{spec.path}: file not found"
        return report
    try:
        st = os.stat(spec.path)
        if not os.path.isfile(spec.path):
            report.error = f"{spec.path}: not a regular file"
            return report
        with open(spec.path, "rb"):
            pass
    except PermissionError:
        report.error = f"{spec.path}: permission denied"
        return report
    except OSError as exc:
        report.error = f"{spec.path}: cannot read ({exc.strerror})"
        return report
    report.bytes, report.mtime, report.mtime_ns = st.st_size, st.st_mtime, st.st_mtime_ns
    return report




def start_process_helpers() -> None:
    """Start the forkserver and resource tracker now (see Services.prepare_for_ui for why)."""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver.ensure_running()
