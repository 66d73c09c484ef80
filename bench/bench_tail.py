"""Remote tail benchmark over a real sshd on 127.0.0.1: line latency and ingest rate.

    .venv/bin/python bench/bench_tail.py [--lines 1000000] [--latency-lines 400] [--reps 3]

* latency - a process on the "box" appends a line carrying its own `time.time()` every 20 ms
            (written in two parts, as a real log line may be); the mirror (`RemoteMirror.follow`,
            poll 0.1 s, the value the CLI and the Runs screen use) runs its `on_lines` callback,
            which records `time.time() - stamp`. Same machine, same clock. p50/p95/max over
            `--latency-lines` lines. Target: p95 < 0.5 s.
* ingest  - a finished 1,000,000-line train.log (~85 MB) sits on the box; the time from an empty
            local mirror to the callback having seen every line (connect included). Target:
            >= 50,000 lines/s. Baseline in the same run: OpenSSH's own client,
            `ssh -F CFG gpu-box cat FILE`, read line by line in Python (the obvious way, no
            resume, no partial-line handling).

Each ingest repetition starts from an empty local dir; variants alternate (baseline, ours, ...).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.remote.sshd import Sshd  # noqa: E402  the same throwaway server the tests use
from zelda_tui.backends.remote_tail import RemoteMirror  # noqa: E402
from zelda_tui.backends.ssh import SshSession  # noqa: E402

WRITER = """
import sys, time
path, n = sys.argv[1], int(sys.argv[2])
with open(path + "/train.log", "a") as fh:
    for i in range(n):
        line = f"{time.time():.6f} step {i} loss 1.2345 lr 2e-4\\n"
        fh.write(line[:10]); fh.flush(); time.sleep(0.002)
        fh.write(line[10:]); fh.flush(); time.sleep(0.018)
with open(path + "/status.json.tmp", "w") as fh:
    fh.write('{"state": "completed"}')
import os; os.replace(path + "/status.json.tmp", path + "/status.json")
"""


def mirror(server: Sshd, remote: Path, local: Path, on_lines) -> RemoteMirror:
    settings = server.settings()
    return RemoteMirror(lambda: SshSession("gpu-box", settings).connect(), str(remote), local, on_lines=on_lines, poll_s=0.1)


def latency(server: Sshd, root: Path, n: int) -> list[float]:
    remote, local = root / "lat_remote", root / "lat_local"
    remote.mkdir()
    local.mkdir()
    (remote / "status.json").write_text('{"state": "running"}')
    delays: list[float] = []

    def on_lines(name: str, lines: list[str]) -> None:
        now = time.time()
        delays.extend(now - float(line.split()[0]) for line in lines if name == "train.log")

    m = mirror(server, remote, local, on_lines)
    follower = threading.Thread(target=m.follow, args=(threading.Event(),))
    follower.start()
    time.sleep(0.5)  # connected before the first line
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(remote), str(n)])
    writer.wait()
    follower.join(30)
    return delays


def ingest_ours(server: Sshd, remote: Path, local: Path, n: int) -> float:
    seen = [0]

    def on_lines(name: str, lines: list[str]) -> None:
        seen[0] += len(lines)

    t0 = time.perf_counter()
    m = mirror(server, remote, local, on_lines)
    m.sync_once()
    m.close()
    dt = time.perf_counter() - t0
    assert seen[0] == n, seen[0]
    return dt


def ingest_baseline(server: Sshd, remote: Path, n: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(["ssh", "-F", str(server.root / "ssh_config"), "-o", f"UserKnownHostsFile={server.root / 'known_hosts'}",
                             "-o", "BatchMode=yes", "gpu-box", "cat", str(remote / "train.log")], stdout=subprocess.PIPE)
    count = sum(1 for _ in proc.stdout)
    proc.wait()
    dt = time.perf_counter() - t0
    assert count == n, count
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--latency-lines", type=int, default=400)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_tail_"))
    server = Sshd.create(root / "sshd")
    server.start()
    server.settings()  # writes known_hosts with the server's key
    try:
        delays = sorted(latency(server, root, args.latency_lines))
        p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
        print(f"latency over {len(delays)} lines: p50 {p(0.50) * 1000:.0f} ms, p95 {p(0.95) * 1000:.0f} ms, "
              f"max {delays[-1] * 1000:.0f} ms (target p95 < 500 ms)")

        remote = root / "big_remote"
        remote.mkdir()
        with open(remote / "train.log", "w") as fh:
            for i in range(args.lines):
                fh.write(f"{{\"t\": {1764000000 + i * 0.01:.2f}, \"event\": \"train\", \"step\": {i}, \"loss\": 1.2345, \"lr\": 0.0002}}\n")
        size = (remote / "train.log").stat().st_size
        base, ours = [], []
        for rep in range(args.reps):
            base.append(ingest_baseline(server, remote, args.lines))
            local = root / f"ingest_local_{rep}"
            local.mkdir()
            ours.append(ingest_ours(server, remote, local, args.lines))
            shutil.rmtree(local)
        b, o = statistics.median(base), statistics.median(ours)
        print(f"ingest of {args.lines:,} lines ({size / 1e6:.0f} MB), median of {args.reps}:")
        print(f"  baseline ssh cat | lines : {b:6.2f} s  {args.lines / b:>10,.0f} lines/s")
        print(f"  ours (RemoteMirror)      : {o:6.2f} s  {args.lines / o:>10,.0f} lines/s  ({b / o:.2f}x the baseline; "
              "target >= 50,000 lines/s)")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
