"""Code upload benchmark over a real sshd on 127.0.0.1: this program's own code to a fresh box.

    .venv/bin/python bench/bench_upload.py [--reps 5]

What every remote start, resume, recovery, eval and export does first on a box that does not have
this version of the code yet: `box_files.code_transfers` (~130 files, ~1.5 MB) sent by
`box_files.upload` into a fresh training dir. Each repetition of each variant is a fresh
`python bench/bench_upload.py --child VARIANT` (bench/_harness.py) with its own new training dir
on the box (the tests' throwaway sshd, `tests/remote/sshd.py`); variants alternate.

* baseline - `upload_one_by_one` below: the upload as it was before small files went as one tar
             (per file: SFTP stat of the .part, open/write/close, stat, one `sha256sum` exec,
             rename), kept here as the reference.
* ours     - `box_files.upload` as it is.

The clock runs around the upload call alone: connecting and hashing the local files
(`code_transfers`) happen before it, the same for both. Every run checks that each file arrived
byte-identical under its final name and that nothing else (no .part) is left, and counts what
it asked of the box: exec commands (each a channel open + exec + exit status: a few network round
trips) and SFTP requests (each a round trip unless pipelined). On loopback a round trip is ~0.1 ms
and an exec ~0.2 s of sshd session setup; to a rented box 50-150 ms is added per round trip, so
the counts say how the gap grows there.
"""

from __future__ import annotations

import argparse
import posixpath
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _harness as h  # noqa: E402
from tests.remote.sshd import Sshd  # noqa: E402  the same throwaway server the tests use
from zelda_tui.backends import box_files, remote_runs  # noqa: E402
from zelda_tui.backends.ssh import RemoteError, SshSession  # noqa: E402


def upload_one_by_one(session: SshSession, items: list[box_files.Transfer], step: str) -> int:
    """The baseline: every file through its own .part over SFTP, verified by its own exec."""
    have = box_files.remote_digests(session, [t.remote for t in items])
    todo = [t for t in items if have.get(t.remote) != t.sha256]
    if not todo:
        return 0
    dirs = sorted({posixpath.dirname(t.remote) for t in todo})
    session.check("mkdir -p " + " ".join(shlex.quote(d) for d in dirs), f"{step}: create directories")
    sftp = session.sftp
    sent = 0
    for item in todo:
        part = item.remote + ".part"
        try:
            start = sftp.stat(part).st_size or 0
        except FileNotFoundError:
            start = 0
        if start > item.size:
            start = 0
        with open(item.local, "rb") as src, sftp.open(part, "ab" if start else "wb") as dst:
            dst.set_pipelined(True)
            src.seek(start)
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                sent += len(chunk)
        if (sftp.stat(part).st_size or 0) != item.size:
            raise RemoteError(f"{step}: {item.remote} stopped short")
        got = session.check(f"sha256sum < {shlex.quote(part)}", f"{step}: verify").split()[0]
        if got != item.sha256:
            raise RemoteError(f"{step}: {item.remote} arrived corrupted")
        sftp.posix_rename(part, item.remote)
    return sent


def child(variant: str, sshd_root: Path, port: int, box_root: Path) -> None:
    settings = remote_runs.RemoteSettings(training_dir=str(box_root / f"{variant}-{uuid.uuid4().hex[:8]}"))
    _app, code = box_files.code_transfers(settings)
    server = Sshd(sshd_root, port, "")
    with SshSession("gpu-box", server.settings()) as session:
        commands = [0]
        real_run = session.run

        def counting_run(command: str, *args, **kwargs):
            commands[0] += 1
            return real_run(command, *args, **kwargs)

        session.run = counting_run  # type: ignore[method-assign]
        sftp = session.sftp  # opened outside the clock for both (ours never uses it)
        requests = [0]
        real_request = sftp._async_request  # type: ignore[attr-defined]  # paramiko's one door for every SFTP request

        def counting_request(*args, **kwargs):
            requests[0] += 1
            return real_request(*args, **kwargs)

        sftp._async_request = counting_request  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        if variant == "baseline":
            sent = upload_one_by_one(session, code, "upload the trainer code")
        elif variant == "ours":
            sent = box_files.upload(session, code, "upload the trainer code", lambda _: None)
        else:
            raise SystemExit(f"unknown variant {variant}")
        seconds = time.perf_counter() - t0
    identical = all(Path(t.remote).read_bytes() == t.local.read_bytes() for t in code)
    leftovers = [str(p) for p in Path(settings.training_dir).rglob("*.part")]
    shutil.rmtree(settings.training_dir)
    h.child_result(seconds, files=len(code), bytes=sent, commands=commands[0], sftp_requests=requests[0],
                   identical=identical and sent == sum(t.size for t in code), leftovers=leftovers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--sshd-root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--box", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.sshd_root, args.port, args.box)
        return

    root = Path(tempfile.mkdtemp(prefix="zelda-bench-upload-"))
    server = Sshd.create(root / "sshd")
    server.start()
    server.settings()  # writes known_hosts with the server's key
    (root / "box").mkdir()
    try:
        print(f"machine: {h.machine()}; load average before: {h.loadavg()}", file=sys.stderr)
        common = ["--sshd-root", str(server.root), "--port", str(server.port), "--box", str(root / "box")]
        runs = h.run_all(Path(__file__).resolve(), [("baseline", common), ("ours", common)], args.reps)
        load_after = h.loadavg()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"\n## Code upload to a fresh box ({time.strftime('%Y-%m-%d')}, {h.machine()}, load avg after: {load_after})\n")
    first = runs["ours"][0].extra
    print(f"{first['files']} files, {first['bytes'] / 1e6:.2f} MB; {args.reps} reps per variant, fresh process each\n")
    print(h.table([("baseline (one by one over SFTP)", runs["baseline"]), ("ours (small files as one tar)", runs["ours"])],
                  baseline="baseline (one by one over SFTP)"))
    print()
    for name in ("baseline", "ours"):
        e = runs[name][0].extra
        print(f"{name}: {e['commands']} exec commands, {e['sftp_requests']} SFTP requests")
    base = h.median([r.seconds for r in runs["baseline"]])
    ours = h.median([r.seconds for r in runs["ours"]])
    ok = all(r.extra["identical"] and not r.extra["leftovers"] for rs in runs.values() for r in rs)
    print(f"\nours is {base / ours:.1f}x the baseline; every file byte-identical, nothing left in .part: "
          f"{'yes' if ok else 'NO'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
