"""core/locks.py, the one lock-file implementation (mix builds, eval generators, mirrors, checkpoint
copies, recoveries), against real processes: a child holds the lock while this test process asks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from zelda_tui.core import locks

HOLD = """
import sys
from pathlib import Path
from zelda_tui.core import locks
lock = locks.FileLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
sys.stdin.read()  # holds until its stdin closes (or it is killed)
"""


@pytest.fixture
def child_holding():
    """Start a process that holds the lock on `path`; returns it once it holds it."""
    procs: list[subprocess.Popen] = []

    def start(path: Path, script: str = HOLD) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n", proc.stderr.read() if proc.stderr else ""
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_held_lock_refuses_at_once_naming_the_holders_pid(tmp_path: Path, child_holding):
    path = tmp_path / "sub" / ".x.lock"
    holder = child_holding(path)
    lock = locks.FileLock(path)
    started = time.monotonic()
    assert not lock.try_acquire() and not lock.held
    assert lock.holder_pid == str(holder.pid)
    with pytest.raises(locks.Busy) as info:
        with locks.exclusive(path):
            pytest.fail("the block ran while another process held the lock")
    assert info.value.pid == str(holder.pid) and str(info.value) == f"{path}: held by PID {holder.pid}"
    assert locks.holder(path) == str(holder.pid)
    assert time.monotonic() - started < 2  # none of them waited


def test_a_waiting_lock_is_taken_when_the_holder_exits_and_says_busy_once(tmp_path: Path, child_holding):
    path = tmp_path / ".x.lock"
    holder = child_holding(path)
    busy: list[float] = []
    got: list[float] = []

    def wait_for_it() -> None:
        with locks.waiting(path, on_busy=lambda: busy.append(time.monotonic())):
            got.append(time.monotonic())
            assert path.read_text() == f"{os.getpid()}\n"  # ours now, and the file says so

    waiter = threading.Thread(target=wait_for_it, daemon=True)
    waiter.start()
    time.sleep(0.5)
    assert len(busy) == 1 and not got  # told once, still waiting
    assert holder.stdin is not None
    let_go = time.monotonic()
    holder.stdin.close()  # the holder exits
    waiter.join(10)
    assert len(busy) == 1 and len(got) == 1 and got[0] >= let_go
    assert holder.wait(10) == 0
    assert locks.holder(path) is None


def test_a_killed_holder_frees_the_lock(tmp_path: Path, child_holding):
    path = tmp_path / ".x.lock"
    holder = child_holding(path)
    assert locks.holder(path) == str(holder.pid)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert locks.holder(path) is None
    busy: list[int] = []
    lock = locks.FileLock(path)
    lock.acquire(on_busy=lambda: busy.append(1))
    assert lock.held and not busy and path.read_text() == f"{os.getpid()}\n"  # the dead PID is gone from the file
    lock.release()


def test_two_locks_of_one_process_exclude_each_other_until_released(tmp_path: Path):
    path = tmp_path / ".x.lock"
    first, second = locks.FileLock(path), locks.FileLock(path)
    assert first.try_acquire() and first.try_acquire()  # taking it again while ours: still ours
    assert not second.try_acquire() and second.holder_pid == str(os.getpid())
    first.release()
    first.release()  # letting go twice is harmless
    assert second.try_acquire()
    second.release()


def test_looking_at_a_lock_neither_creates_it_nor_writes_it(tmp_path: Path):
    missing = tmp_path / "nowhere" / ".x.lock"
    assert locks.holder(missing) is None and not missing.parent.exists()
    free = tmp_path / ".free.lock"
    free.write_text("123\n")  # a holder that has died
    assert locks.holder(free) is None and free.read_text() == "123\n"


SILENT_HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_holder_that_wrote_no_pid_is_named_by_a_question_mark(tmp_path: Path, child_holding):
    path = tmp_path / ".x.lock"
    child_holding(path, SILENT_HOLD)  # an flock with nothing inside (an older zelda-tui's eval generator)
    assert locks.holder(path) == "?"
    with pytest.raises(locks.Busy, match=r"held by PID \?$"):
        with locks.exclusive(path):
            pass


def test_each_callers_lock_file_excludes_a_process_holding_it(tmp_path: Path, child_holding):
    """The lock files are part of the run dir's contract: a holder of the named file (another
    zelda-tui) keeps the mirror and the checkpoint copier out and makes the eval generator wait."""
    from zelda_tui.backends.checkpoint_sync import CheckpointSync
    from zelda_tui.backends.remote_tail import RemoteMirror
    from zelda_tui.core import eval_worker, evals

    def no_link():
        raise AssertionError("connected while another process held the lock")

    run_dir = tmp_path / "runs" / "r1"
    child_holding(run_dir / ".mirror.lock")
    mirror = RemoteMirror(no_link, "/remote/r1", run_dir)
    assert not mirror.take_lock() and mirror.sync_once() == 0

    child_holding(run_dir / ".checkpoint-sync.lock")
    assert CheckpointSync(no_link, "/remote/r1", run_dir).run_once() is None

    edir = evals.eval_dir(run_dir, "heldout")
    assert edir == run_dir / "evals" / "heldout"
    generator = child_holding(edir / ".generate.lock")
    busy: list[int] = []
    got: list[int] = []

    def generate() -> None:
        with eval_worker.worker_lock(edir, on_busy=lambda: busy.append(1)):
            got.append(1)

    waiter = threading.Thread(target=generate, daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert busy == [1] and not got
    assert generator.stdin is not None
    generator.stdin.close()
    waiter.join(10)
    assert busy == [1] and got == [1]
