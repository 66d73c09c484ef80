"""The workspace state database (SQLite): caches, registry, runs, instances, evals.

One connection per Store; WAL so the TUI's workers and a CLI in another terminal can share
it. Schema changes are numbered migrations applied on open.

Every SQLite failure leaves as one `StateError` line naming the file and what to do (locked by
another process past a short wait, read-only, not a database, damaged), never a traceback. A
read-only file still opens read-only, so commands that only read (config check, the inventory
from its cache) keep working; only writes fail, and cache writes are skipped.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

import orjson

from .errors import ZeldaError

BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process' lock before it is an error


class StateError(ZeldaError):
    """state.sqlite cannot be used as asked (locked, read-only, not a database, damaged)."""


def _code(exc: sqlite3.Error) -> str:
    """SQLite's primary result code name (`SQLITE_BUSY`, `SQLITE_READONLY`, ...; extended codes cut back)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return "_".join(name.split("_")[:2])


def state_error(path: Path, exc: sqlite3.Error, waited_s: float = BUSY_TIMEOUT_S) -> StateError:
    """The one line a user reads for a SQLite failure on the state database (by SQLite's result code)."""
    code = _code(exc)
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        why = (f"locked by another process for more than {waited_s:g} s (another zelda-tui or a sqlite3 shell "
               "writing to it) — close it or try again")
    elif code == "SQLITE_READONLY":
        why = "is read-only — this command needs to write it: check its permissions (chmod u+w) or copy the workspace"
    elif code in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        why = (f"is damaged or not a SQLite database ({exc}) — move it aside (mv {path.name} {path.name}.bad); "
               "a new one is created, runs are re-read from their run dirs")
    elif code == "SQLITE_CANTOPEN":
        why = "cannot be opened — check that its folder exists and is writable"
    else:
        why = f"failed: {exc}"
    return StateError(f"{path}: state database {why}")


MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE qa_cache (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        params TEXT NOT NULL,
        report BLOB NOT NULL,
        scanned_at REAL NOT NULL
    );
    CREATE TABLE file_digest (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE TABLE registry (
        name TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        records INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        mtime REAL NOT NULL,
        tags TEXT NOT NULL,
        indexed_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE runs (
        name TEXT PRIMARY KEY,
        run_dir TEXT NOT NULL,
        host TEXT NOT NULL,
        mix TEXT NOT NULL,
        phase INTEGER,
        pid INTEGER,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    """,
    """
    CREATE TABLE throughput (
        run TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        gpu TEXT NOT NULL,
        gpus INTEGER NOT NULL,
        tokens_per_s REAL NOT NULL,
        seq_len INTEGER NOT NULL,
        micro_batch INTEGER NOT NULL,
        measured_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE instances (
        key TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        offer TEXT NOT NULL,
        gpu_name TEXT NOT NULL,
        num_gpus INTEGER NOT NULL,
        dph_total REAL NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        state TEXT NOT NULL,
        ssh_host TEXT,
        ssh_port INTEGER
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN remote_dir TEXT;
    """,
    """
    CREATE TABLE eval_results (
        run TEXT NOT NULL,
        checkpoint TEXT NOT NULL,
        prompt_set TEXT NOT NULL,
        prompt_idx INTEGER NOT NULL,
        sample INTEGER NOT NULL,
        category TEXT NOT NULL,
        prompt TEXT NOT NULL,
        reference TEXT,
        answer TEXT NOT NULL,
        verdict TEXT NOT NULL,
        checker TEXT NOT NULL,
        errors TEXT NOT NULL,
        line INTEGER,
        code TEXT NOT NULL,
        match INTEGER,
        truncated INTEGER NOT NULL,
        PRIMARY KEY (run, checkpoint, prompt_set, prompt_idx, sample)
    );
    CREATE TABLE eval_summaries (
        run TEXT NOT NULL,
        checkpoint TEXT NOT NULL,
        prompt_set TEXT NOT NULL,
        run_dir TEXT NOT NULL,
        step INTEGER,
        model TEXT NOT NULL,
        prompts_sha256 TEXT NOT NULL,
        samples INTEGER NOT NULL,
        header TEXT NOT NULL,
        summary TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (run, checkpoint, prompt_set)
    );
    """,
)


class Store:
    """Thin typed access to state.sqlite. Safe to share between threads (one lock)."""

    def __init__(self, path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.read_only = False
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot create its folder ({exc.strerror})") from None
        with self._errors():
            try:
                self._db = self._connect(read_only=False)
                self._db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if _code(exc) != "SQLITE_READONLY" or not self.path.exists():
                    raise
                self._db.close()
                self._db, self.read_only = self._connect(read_only=True), True
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()

    def _connect(self, read_only: bool) -> sqlite3.Connection:
        """Read-write; or read-only, falling back to `immutable` where SQLite cannot even create the WAL
        index beside a read-only file (a read-only folder): a snapshot, which is all a reader needs."""
        if not read_only:
            return sqlite3.connect(self.path, check_same_thread=False, timeout=self.busy_timeout_s, isolation_level=None)
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=self.busy_timeout_s,
                             isolation_level=None)
        try:
            db.execute("PRAGMA user_version").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Any SQLite failure inside becomes one StateError line."""
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a bug in what we asked, not a problem with the user's file
        except sqlite3.Error as exc:
            raise state_error(self.path, exc, self.busy_timeout_s) from None

    @contextmanager
    def _use(self) -> Iterator[None]:
        """One statement group at a time (threads share the connection), failures as StateError."""
        with self._lock, self._errors():
            yield

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._use():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version < len(MIGRATIONS) and self.read_only:
                raise StateError(f"{self.path}: state database is read-only and older than this zelda-tui "
                                 "(its schema needs an upgrade): make it writable (chmod u+w) and run again")
            for i, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in filter(str.strip, sql.split(";")):
                        self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version = {i}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    # --- QA cache ------------------------------------------------------------------
    def qa_lookup(self, path: str, size: int, mtime_ns: int, params: str) -> dict | None:
        with self._use():
            row = self._db.execute(
                "SELECT report FROM qa_cache WHERE path=? AND size=? AND mtime_ns=? AND params=?",
                (path, size, mtime_ns, params),
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def qa_save(self, path: str, size: int, mtime_ns: int, params: str, report: dict) -> None:
        if self.read_only:
            return  # a cache: a read-only workspace is scanned again next time
        with self._use():
            self._db.execute(
                "INSERT OR REPLACE INTO qa_cache VALUES (?,?,?,?,?,?)",
                (path, size, mtime_ns, params, orjson.dumps(report), time.time()),
            )

    # --- file digests --------------------------------------------------------------
    def digest_lookup(self, path: str, size: int, mtime_ns: int) -> str | None:
        with self._use():
            row = self._db.execute(
                "SELECT sha256 FROM file_digest WHERE path=? AND size=? AND mtime_ns=?", (path, size, mtime_ns)
            ).fetchone()
        return row[0] if row else None

    def digest_save(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        if self.read_only:
            return  # a cache, as qa_save
        with self._use():
            self._db.execute("INSERT OR REPLACE INTO file_digest VALUES (?,?,?,?)", (path, size, mtime_ns, sha256))

    # --- registry ------------------------------------------------------------------
    def registry_replace(self, rows: Iterable[dict[str, Any]]) -> None:
        with self._use():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM registry")
                for r in rows:
                    self._db.execute(
                        "INSERT INTO registry VALUES (?,?,?,?,?,?,?,?)",
                        (r["name"], r["path"], r["records"], r["bytes"], r["sha256"], r["mtime"],
                         orjson.dumps(r["tags"]).decode(), r["indexed_at"]),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def registry_rows(self) -> list[dict[str, Any]]:
        with self._use():
            cur = self._db.execute("SELECT name, path, records, bytes, sha256, mtime, tags, indexed_at FROM registry ORDER BY rowid")
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for r in rows:
            r["tags"] = orjson.loads(r["tags"])
        return rows

    # --- runs ----------------------------------------------------------------------
    def run_upsert(self, name: str, run_dir: str, host: str, mix: str, phase: int | None, pid: int | None, state: str,
                   remote_dir: str | None = None) -> None:
        """host is "local" or the SSH alias; a remote run keeps its local mirror in run_dir."""
        now = time.time()
        with self._use():
            self._db.execute(
                "INSERT INTO runs (name, run_dir, host, mix, phase, pid, state, created, updated, remote_dir) "
                "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "run_dir=excluded.run_dir, host=excluded.host, pid=excluded.pid, state=excluded.state, "
                "updated=excluded.updated, remote_dir=excluded.remote_dir",
                (name, run_dir, host, mix, phase, pid, state, now, now, remote_dir),
            )

    def run_rows(self) -> list[dict[str, Any]]:
        with self._use():
            cur = self._db.execute("SELECT * FROM runs ORDER BY created DESC")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def run_row(self, name: str) -> dict[str, Any] | None:
        with self._use():
            cur = self._db.execute("SELECT * FROM runs WHERE name = ?", (name,))
            cols = [c[0] for c in cur.description]
            row = cur.fetchone()
        return dict(zip(cols, row)) if row else None

    # --- measured throughput (supersedes the estimator's table) ---------------------
    def throughput_save(self, run: str, model: str, gpu: str, gpus: int, tokens_per_s: float, seq_len: int,
                        micro_batch: int, measured_at: float) -> None:
        with self._use():
            self._db.execute("INSERT OR REPLACE INTO throughput VALUES (?,?,?,?,?,?,?,?)",
                             (run, model, gpu, gpus, tokens_per_s, seq_len, micro_batch, measured_at))

    def throughput_measured(self) -> dict[tuple[str, str], tuple[float, str]]:
        """(model, gpu) -> (per-GPU tokens/s, date) of the newest measured run."""
        with self._use():
            rows = self._db.execute(
                "SELECT model, gpu, tokens_per_s / gpus, measured_at FROM throughput ORDER BY measured_at").fetchall()
        return {(m, g): (tps, time.strftime("%Y-%m-%d", time.gmtime(at))) for m, g, tps, at in rows}

    def throughput_has(self, run: str) -> bool:
        with self._use():
            return self._db.execute("SELECT 1 FROM throughput WHERE run = ?", (run,)).fetchone() is not None

    # --- launched instances (spend = $/h x time held) --------------------------------
    def instance_add(self, row: dict[str, Any]) -> None:
        cols = ("key", "provider", "instance_id", "offer", "gpu_name", "num_gpus", "dph_total", "started", "ended",
                "state", "ssh_host", "ssh_port")
        with self._use():
            self._db.execute(f"INSERT INTO instances ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                             tuple(row.get(c) for c in cols))

    def instance_update(self, key: str, /, **values: Any) -> None:
        """Set columns of one instance (`key` may be among them: a reservation gets its real key)."""
        with self._use():
            sets = ", ".join(f"{k} = ?" for k in values)
            self._db.execute(f"UPDATE instances SET {sets} WHERE key = ?", (*values.values(), key))

    def instance_delete(self, key: str) -> None:
        """Only for a reservation whose rent request the provider refused: nothing was rented."""
        with self._use():
            self._db.execute("DELETE FROM instances WHERE key = ? AND state = 'launching'", (key,))

    def instance_rows(self) -> list[dict[str, Any]]:
        with self._use():
            cur = self._db.execute("SELECT * FROM instances ORDER BY started DESC")
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    # --- eval results (one row per run, checkpoint, prompt set, prompt, sample) ---------
    _EVAL_COLS = ("run", "checkpoint", "prompt_set", "prompt_idx", "sample", "category", "prompt", "reference", "answer",
                  "verdict", "checker", "errors", "line", "code", "match", "truncated")

    def eval_replace(self, summary: dict[str, Any], rows: Iterable[dict[str, Any]]) -> None:
        """Replace one (run, checkpoint, prompt set) in one transaction: a reader sees the old
        results or the new ones, never a mix."""
        key = (summary["run"], summary["checkpoint"], summary["prompt_set"])
        cols = self._EVAL_COLS
        with self._use():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM eval_results WHERE run=? AND checkpoint=? AND prompt_set=?", key)
                self._db.executemany(
                    f"INSERT INTO eval_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [self._eval_values(r) for r in rows])
                self._db.execute(
                    "INSERT OR REPLACE INTO eval_summaries VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (*key, summary["run_dir"], summary.get("step"), summary["model"], summary["prompts_sha256"],
                     summary["samples"], orjson.dumps(summary["header"]).decode(),
                     orjson.dumps(summary["summary"]).decode(), time.time()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _eval_values(self, row: dict[str, Any]) -> tuple:
        values = dict(row, errors=orjson.dumps(row.get("errors") or []).decode(), truncated=int(bool(row.get("truncated"))),
                      match=None if row.get("match") is None else int(row["match"]))
        return tuple(values.get(c) for c in self._EVAL_COLS)

    def eval_summaries(self, prompt_set: str | None = None) -> list[dict[str, Any]]:
        with self._use():
            cur = self._db.execute(
                "SELECT * FROM eval_summaries" + (" WHERE prompt_set = ?" if prompt_set else "") + " ORDER BY created",
                (prompt_set,) if prompt_set else ())
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for r in rows:
            r["header"] = orjson.loads(r["header"])
            r["summary"] = orjson.loads(r["summary"])
        return rows

    def eval_summary(self, run: str, checkpoint: str, prompt_set: str) -> dict[str, Any] | None:
        found = [r for r in self.eval_summaries(prompt_set) if r["run"] == run and r["checkpoint"] == checkpoint]
        return found[0] if found else None

    def eval_rows(self, run: str, checkpoint: str, prompt_set: str, prompt_idx: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM eval_results WHERE run=? AND checkpoint=? AND prompt_set=?"
        args: tuple = (run, checkpoint, prompt_set)
        if prompt_idx is not None:
            sql, args = sql + " AND prompt_idx=?", (*args, prompt_idx)
        with self._use():
            cur = self._db.execute(sql + " ORDER BY prompt_idx, sample", args)
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for r in rows:
            r["errors"] = orjson.loads(r["errors"])
            r["match"] = None if r["match"] is None else bool(r["match"])
            r["truncated"] = bool(r["truncated"])
        return rows

    def eval_prompt_sets(self) -> list[dict[str, Any]]:
        """Prompt sets with results: name, checkpoints scored, last scored (newest first)."""
        with self._use():
            rows = self._db.execute(
                "SELECT prompt_set, COUNT(*), MAX(created) FROM eval_summaries GROUP BY prompt_set ORDER BY MAX(created) DESC"
            ).fetchall()
        return [{"prompt_set": n, "checkpoints": c, "last": t} for n, c, t in rows]
