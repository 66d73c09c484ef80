"""A preemption notice the box itself can see becomes a SIGTERM at once (#17.4): the trainer already
checkpoints on SIGTERM and exits, so a spot VM that is taken away loses at most the step under way.

GCP: the metadata server's `instance/preempted` turns TRUE when the VM gets its ~30 s notice; it is
long-polled (`wait_for_change`), so the notice arrives as it is given. Off GCP the first request fails
(no such host, or another cloud's metadata server answering something else) and the watcher ends.
Vast gives no notice a box can see (an interruptible instance is stopped), so nothing is watched there.
`ZELDA_TUI_PREEMPT_URL` points the watcher at another server (tests).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import urllib.request

log = logging.getLogger("zelda_tui.trainer")
GCP_PREEMPTED = "http://metadata.google.internal/computeMetadata/v1/instance/preempted"
URL_ENV = "ZELDA_TUI_PREEMPT_URL"
PROBE_TIMEOUT_S = 2.0
WAIT_TIMEOUT_S = 3600.0  # one long poll; asked again when it ends without a change


def _ask(url: str, timeout: float) -> str:
    request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 (a fixed http URL)
        if reply.headers.get("Metadata-Flavor") != "Google":
            raise ValueError("not GCP's metadata server")
        return reply.read(16).decode("ascii", "replace").strip().upper()


def _watch(url: str, pid: int) -> None:
    try:
        preempted = _ask(url, PROBE_TIMEOUT_S)
    except Exception:  # not on GCP: nothing to watch
        return
    log.info("watching GCP's preemption notice (%s)", url)
    while True:
        if preempted == "TRUE":
            log.warning("GCP preemption notice: SIGTERM to pid %d (a checkpoint now, then exit)", pid)
            os.kill(pid, signal.SIGTERM)
            return
        try:
            preempted = _ask(f"{url}?wait_for_change=true&timeout_sec={int(WAIT_TIMEOUT_S)}", WAIT_TIMEOUT_S + 30)
        except Exception as exc:  # the metadata server hiccuped: ask again, never stop the run
            log.info("preemption watch: %s; asking again", exc)
            threading.Event().wait(5.0)
            try:
                preempted = _ask(url, PROBE_TIMEOUT_S)
            except Exception:
                preempted = ""


def start(pid: int) -> threading.Thread:
    """Watch for a preemption notice on a daemon thread (its first request never delays training);
    `pid`: the process whose SIGTERM handler checkpoints (the torchrun launcher under DDP)."""
    thread = threading.Thread(target=_watch, args=(os.environ.get(URL_ENV) or GCP_PREEMPTED, pid),
                              name="preempt-watch", daemon=True)
    thread.start()
    return thread
