"""The remote tail against a real sshd: every line exactly once and in order, whatever happens to
the connection (dropped sessions, sshd restarts, a restarted follower), partial lines held."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from zelda_tui.backends.remote_tail import RemoteMirror
from zelda_tui.backends.ssh import SshSession
from zelda_tui.core import runs

from .log_writer import expected

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
