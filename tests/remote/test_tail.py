"""The remote tail against a real sshd: every line exactly once and in order, whatever happens to
the connection (dropped sessions, sshd restarts, a restarted follower), partial lines held."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.backends.replay_server import ReplayServer
from zelda_tui.backends.remote_tail import RemoteMirror
from zelda_tui.backends.ssh import SshSession
from zelda_tui.core import runs
from zelda_tui.services import build_services

from . import log_writer
from .log_writer import expected
from .test_run_watch import KEY, RUN, box, remote_run, running, trainer, vast_says, wait, workspace  # noqa: F401

WRITER = Path(__file__).with_name("log_writer.py")


def start_writer(sshd, remote: Path, n: int, rate: float) -> None:
    remote.mkdir(parents=True, exist_ok=True)
    with SshSession("gpu-box", sshd.settings()) as s:
        s.check(f"cd {remote} || exit 1; setsid nohup {sys.executable} {WRITER} {remote} {n} {rate} >/dev/null 2>&1 < /dev/null &",
                "start the writer")


def mirror_for(sshd, remote: Path, local: Path, seen: list, states: list) -> RemoteMirror:
    local.mkdir(parents=True, exist_ok=True)
    settings = sshd.settings()
    return RemoteMirror(lambda: SshSession("gpu-box", settings).connect(), str(remote), local,
                        on_lines=lambda name, lines: seen.extend((name, line) for line in lines),
                        on_state=states.append, poll_s=0.05)


def test_every_line_once_in_order_through_drops_and_restarts(sshd, tmp_path: Path):
    n = 1500
    remote, local = tmp_path / "remote" / "run", tmp_path / "local" / "run"
    start_writer(sshd, remote, n, rate=400)
    seen: list = []
    states: list = []
    stop = threading.Event()
    mirror = mirror_for(sshd, remote, local, seen, states)
    follower = threading.Thread(target=mirror.follow, args=(stop,), daemon=True)
    follower.start()
    drops = 0
    for round_ in range(6):  # while the job writes: kill the live sessions again and again
        time.sleep(0.3)
        deadline = time.monotonic() + 3
        while not sshd.session_pids() and time.monotonic() < deadline:
            time.sleep(0.02)  # the follower is still reconnecting (a loaded machine): wait for its session
        drops += sshd.drop_sessions()
        if round_ == 3:
            sshd.restart(down_s=0.7)  # sshd itself goes away and comes back
    # the follower itself is restarted (the app was closed and opened again): it resumes from the local file
    stop.set()
    follower.join(10)
    stop2 = threading.Event()
    mirror2 = mirror_for(sshd, remote, local, seen, states)
    follower2 = threading.Thread(target=mirror2.follow, args=(stop2,), daemon=True)
    follower2.start()
    time.sleep(0.5)
    sshd.drop_sessions()
    follower2.join(60)
    kinds = [s.state for s in states]
    assert not follower2.is_alive(), f"the follower should stop once the job completed; states {kinds}"
    assert drops >= 3, f"only {drops} sessions dropped; states {kinds}"
    log_lines = [line for name, line in seen if name == runs.TRAIN_LOG]
    want = [expected(i) for i in range(n)]
    assert log_lines == want, (f"{len(log_lines)} lines seen, {len(set(log_lines))} distinct, first difference at "
                               f"{next((i for i, (a, b) in enumerate(zip(log_lines, want)) if a != b), None)}")  # every line, once, in order
    assert (local / runs.TRAIN_LOG).read_bytes() == (remote / runs.TRAIN_LOG).read_bytes()
    assert (local / runs.METRICS).read_bytes() == (remote / runs.METRICS).read_bytes()
    assert runs.read_status(local).state == "completed"
    assert "reconnecting" in kinds and kinds[-1] == "stopped", kinds
    reconnect = next(s for s in states if s.state == "reconnecting")
    assert "gpu-box" in reconnect.line() and "reconnecting, try" in reconnect.line()


def test_a_partial_last_line_is_held_until_complete(sshd, tmp_path: Path):
    remote, local = tmp_path / "r", tmp_path / "l"
    remote.mkdir()
    seen: list = []
    mirror = mirror_for(sshd, remote, local, seen, [])
    (remote / runs.TRAIN_LOG).write_bytes("first line\nsecond, half".encode())
    assert mirror.sync_once() == 1
    assert (local / runs.TRAIN_LOG).read_text() == "first line\n"
    with open(remote / runs.TRAIN_LOG, "ab") as fh:
        fh.write(" and done ünïcode\n".encode())
    assert mirror.sync_once() == 1
    assert mirror.sync_once() == 0
    mirror.close()
    assert [line for _, line in seen] == ["first line", "second, half and done ünïcode"]


def test_remote_run_dir_deleted_ends_the_follow_and_keeps_the_copy(sshd, tmp_path: Path):
    remote, local = tmp_path / "r", tmp_path / "l"
    remote.mkdir()
    (remote / runs.TRAIN_LOG).write_text("kept\n")
    (remote / runs.STATUS).write_text('{"state": "running", "pid": 1}')
    states: list = []
    mirror = mirror_for(sshd, remote, local, [], states)
    mirror.sync_once()
    for p in remote.iterdir():
        p.unlink()
    remote.rmdir()
    sshd.drop_sessions()  # the next connection finds the dir gone
    final = mirror.follow(threading.Event())
    assert final.state == "failed" and "gone" in final.error and str(remote) in final.error
    assert (local / runs.TRAIN_LOG).read_text() == "kept\n"


def follow_in_thread(mirror: RemoteMirror) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    follower = threading.Thread(target=mirror.follow, args=(stop,), daemon=True)
    follower.start()
    return follower, stop


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_run_dir_gone_while_connected_ends_the_follow_as_at_connect(sshd, tmp_path: Path, how: str):
    """Deleted (or re-imaged) on the box, or emptied under a still-there dir (its disk unmounted), while
    the mirror is connected and the run trains: the follow ends "failed"/gone within seconds, as when
    the next connection finds it gone, instead of polling "nothing new" forever."""
    remote, local = tmp_path / "remote" / "run", tmp_path / "local" / "run"
    start_writer(sshd, remote, 100_000, rate=50)
    states: list = []
    mirror = mirror_for(sshd, remote, local, [], states)
    follower, stop = follow_in_thread(mirror)
    try:
        wait(lambda: (local / runs.TRAIN_LOG).exists() and runs.read_status(local) is not None)
        assert states[-1].state == "connected"
        os.kill(runs.read_status(local).pid, signal.SIGKILL)  # it would write status.json into an emptied dir
        shutil.rmtree(remote)
        if how == "emptied":
            remote.mkdir()
        gone_at = time.monotonic()
        follower.join(10)
        took = time.monotonic() - gone_at
    finally:
        stop.set()
    assert not follower.is_alive(), f"still following a run dir that is gone; states {[s.state for s in states]}"
    final = states[-1]
    assert final.state == "failed" and "gone" in final.error and str(remote) in final.error, final
    assert "reconnecting" not in [s.state for s in states], "a gone run dir is not link trouble"
    assert took < 8, f"noticed after {took:.1f} s"
    kept = (local / runs.TRAIN_LOG).read_text().splitlines()
    assert kept and kept == [expected(i) for i in range(len(kept))]  # what came home stays


def test_tail_says_the_run_dir_went_and_exits_1(box, small_ws: Path, trainer: int):
    """`tail` of a remote run whose dir is deleted on the box while it follows: it says so and
    exits 1, as when it connects to a box without that dir, instead of waiting forever."""
    with ReplayServer() as server:
        vast_says(server, running())
        cfg = workspace(small_ws, box, f"{server.url}/api/v0", lost_after_minutes=60)
        services = build_services(cfg)
        try:
            remote, local = remote_run(services, box, small_ws.parent, pid=trainer)
        finally:
            services.close()
        (remote / runs.TRAIN_LOG).write_text("step 1\n")
        env = {**os.environ, "VAST_API_KEY": KEY}
        tail = subprocess.Popen([sys.executable, "-m", "zelda_tui", "tail", RUN, "--config", str(cfg)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait(lambda: (local / runs.TRAIN_LOG).exists() or tail.poll() is not None, timeout=60)
            assert tail.poll() is None, tail.communicate()
            shutil.rmtree(remote)
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait()
    assert tail.returncode == 1, (out, err)
    assert "step 1" in out
    said = [line for line in (out + err).splitlines() if line.startswith("zelda-tui: error:")]
    assert said and f"remote run dir {remote} is gone" in said[0], (out, err)


def test_status_json_not_yet_written_or_replaced_in_a_loop_is_not_gone(sshd, tmp_path: Path):
    """A run dir whose trainer has not written status.json yet, then one replacing it (temp + rename)
    as fast as it can: the mirror keeps following until the run completes."""
    remote, local = tmp_path / "r", tmp_path / "l"
    remote.mkdir()
    (remote / runs.TRAIN_LOG).write_text("starting\n")
    states: list = []
    mirror = mirror_for(sshd, remote, local, [], states)
    follower, stop = follow_in_thread(mirror)
    try:
        time.sleep(3.5)  # > GONE_AFTER_S + DIR_CHECK_S with no status.json
        assert follower.is_alive() and states[-1].state == "connected", states
        end = time.monotonic() + 3.5
        step = 0
        while time.monotonic() < end:
            step += 1
            log_writer.status(str(remote), "running", step)
        log_writer.status(str(remote), "completed", step)
        follower.join(10)
    finally:
        stop.set()
    assert [s.state for s in states][-1] == "stopped", states
    assert "failed" not in [s.state for s in states]
    assert runs.read_status(local).state == "completed"


def test_replaced_remote_log_is_refused_not_mixed(sshd, tmp_path: Path):
    remote, local = tmp_path / "r", tmp_path / "l"
    remote.mkdir()
    (remote / runs.TRAIN_LOG).write_text("one\ntwo\nthree\n")
    mirror = mirror_for(sshd, remote, local, [], [])
    mirror.sync_once()
    (remote / runs.TRAIN_LOG).write_text("new\n")
    final = mirror.follow(threading.Event())
    assert final.state == "failed" and "shorter" in final.error
    assert (local / runs.TRAIN_LOG).read_text() == "one\ntwo\nthree\n"


def test_a_backlog_streams_in_bulk_and_still_holds_the_partial_line(sshd, tmp_path: Path):
    remote, local = tmp_path / "r", tmp_path / "l"
    remote.mkdir()
    lines = [f"{i:08d} " + "y" * 90 for i in range(30_000)]  # ~3 MB: past the bulk threshold
    (remote / runs.TRAIN_LOG).write_text("\n".join(lines) + "\nhalf a li")
    seen: list = []
    mirror = mirror_for(sshd, remote, local, seen, [])
    assert mirror.sync_once() == len(lines)
    with open(remote / runs.TRAIN_LOG, "a") as fh:
        fh.write("ne\n")
    assert mirror.sync_once() == 1
    mirror.close()
    assert [line for _, line in seen] == lines + ["half a line"]
    assert (local / runs.TRAIN_LOG).read_bytes() == (remote / runs.TRAIN_LOG).read_bytes()


def test_one_mirror_per_run_dir_the_second_reads_the_first_ones_copy(sshd, tmp_path: Path):
    remote, local = tmp_path / "r", tmp_path / "l"
    remote.mkdir()
    (remote / runs.TRAIN_LOG).write_text("a\nb\n")
    (remote / runs.STATUS).write_text('{"state": "running", "pid": 1}')
    first_seen: list = []
    first = mirror_for(sshd, remote, local, first_seen, [])
    assert first.take_lock()
    second_states: list = []
    second = mirror_for(sshd, remote, local, [], second_states)
    assert second.sync_once() == 0 and not (local / runs.TRAIN_LOG).exists()  # it leaves the copying to the first
    stop = threading.Event()
    follower = threading.Thread(target=second.follow, args=(stop,), daemon=True)
    follower.start()
    time.sleep(0.3)
    assert [s.state for s in second_states] == ["shared"] and "another zelda-tui" in second_states[0].line()
    assert first.sync_once() == 2
    first.close()  # the first one goes away: the second takes over and copies only what is new
    with open(remote / runs.TRAIN_LOG, "a") as fh:
        fh.write("c\n")
    deadline = time.monotonic() + 10
    while (local / runs.TRAIN_LOG).read_text() != "a\nb\nc\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    follower.join(10)
    assert (local / runs.TRAIN_LOG).read_text() == "a\nb\nc\n"
    assert "connected" in [s.state for s in second_states]
