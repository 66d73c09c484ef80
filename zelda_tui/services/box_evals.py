"""Evals of a remote run: its answers are generated on the run's box, where its checkpoints are.

Apart from `services.evals` because it is the one part of an eval that drives a box (a detached
generator there, the run dir's mirror bringing its answers home, what happens when the box or
the link goes); `EvalService.run` calls it with its sink, which validates and scores the answers on this
machine as for a local run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ..backends.hosts import BoxEval
from ..core import evals, runs

if TYPE_CHECKING:
    from ..backends.ssh import SshSession

BOX_GONE_GRACE_S = 15.0  # after the box's generator is seen gone, how long its last files may take to arrive


class BoxEvalSink(Protocol):
    """What `generate_on_box` feeds: EvalService's sink, which scores each checkpoint as its answers land."""

    run_dir: Path
    prompt_set: str
    pid: int | None  # set here: only this generator's events are its own
    fatal: list[str]
    finished: bool

    def line(self, text: str) -> None: ...

    def fail_pending(self, names: list[str], message: str) -> None: ...


def generate_on_box(box: BoxEval, sink: BoxEvalSink, todo: list[str], opts: evals.GenerateOptions,
                    cancel: threading.Event | None, say: Callable[[str], None]) -> None:
    """Generate on the run's box: the generator starts detached there (a dropped connection or a
    closed laptop loses nothing: it goes on, and the next eval picks its answers up); the
    mirror brings each checkpoint's answers home as they land and they are scored here.

    Only the events after this start are read: the generator answers for every checkpoint asked
    ("skipped" for answers it already has), and a generator of the same prompt set that is
    still running there (an earlier eval, the one training started) goes first."""
    edir = evals.eval_dir(sink.run_dir, sink.prompt_set)
    tail = runs.LineTail(edir / evals.EVENTS_FILE)
    tail.offset = tail.path.stat().st_size if tail.path.exists() else 0
    pid = box.start(sink.prompt_set, todo, opts.argv(), say)
    say(f"{box.host.name}: generating on the box (pid {pid}); answers are validated with Asar and scored here")
    sink.pid = pid
    gone = threading.Event()

    def tick(session: SshSession) -> None:
        if not box.alive(session, pid):
            gone.set()

    stop = threading.Event()
    mirror = box.host.mirror(sink.run_dir, on_tick=tick, tick_s=5.0)
    follower = threading.Thread(target=mirror.follow, args=(stop, False), name=f"eval-mirror-{pid}", daemon=True)
    follower.start()
    gone_seen = 0.0
    try:
        while not sink.finished:
            for line in tail.read_new():
                sink.line(line)
            if sink.finished:
                break
            if cancel is not None and cancel.is_set():  # the app closes: the box goes on, the next eval scores it
                sink.fail_pending(todo, f"left generating on {box.host.name} (pid {pid}): the next eval of this "
                                        "run scores what it wrote")
                break
            if mirror.state.state == "failed":
                sink.fail_pending(todo, mirror.state.error)
                break
            if gone.is_set():  # ended without its last event: read what the mirror still brings, then give up
                gone_seen = gone_seen or time.monotonic()
                if time.monotonic() - gone_seen > BOX_GONE_GRACE_S:
                    sink.fail_pending(todo, f"the eval generator on {box.host.name} ended without finishing "
                                            f"(see {evals.EVALS_DIR}/{sink.prompt_set}/{evals.GENERATE_LOG} there); "
                                            "`zelda-tui eval run` again continues")
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        follower.join(timeout=30)
    if sink.fatal:
        sink.fail_pending(todo, sink.fatal[0])
