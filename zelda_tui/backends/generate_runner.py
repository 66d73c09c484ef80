"""Running the eval generator (`python -m zelda_tui.backends.trainer.generate`) on this machine.

The generator (and the exporter) is a child process (torch never enters the app); its stdout is one JSON event
a line, handed to `on_event` as it arrives, its stderr goes to a log file. A set `cancel`
event terminates it (a TUI leaving, Ctrl+C in the CLI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core import jsonl
from ..core.evals import GenerateOptions

MODULE = "zelda_tui.backends.trainer.generate"
GENERATOR_STACK = ("torch", "transformers", "peft")  # what the generator program imports


@dataclass
class GenerateRequest:
    run_dir: Path
    prompt_set: str
    checkpoints: list[str]
    options: GenerateOptions

    def command(self, python: str | None = None) -> list[str]:
        return [python or sys.executable, "-m", MODULE, str(self.run_dir), "--prompt-set", self.prompt_set,
                "--checkpoints", ",".join(self.checkpoints), *self.options.argv()]


def run_generate(request: GenerateRequest, log_path: Path, on_event: Callable[[dict], None],
                 cancel: threading.Event | None = None) -> int:
    """Run the generator to the end (or until `cancel`); returns its exit code."""
    return run_child(request.command(), request.run_dir, log_path, on_event, cancel)


def run_child(command: list[str], cwd: Path, log_path: Path, on_event: Callable[[dict], None],
              cancel: threading.Event | None = None) -> int:
    """Run a torch child program (the generator, the exporter) to the end (or until `cancel`): each
    JSON line of its stdout goes to `on_event`, its stderr to `log_path`; returns its exit code."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                cwd=cwd, env=env, text=True, encoding="utf-8", errors="replace")
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if cancel is not None and cancel.is_set() and proc.poll() is None:
                proc.terminate()
                return

    watcher = threading.Thread(target=watch, name=f"child-{proc.pid}", daemon=True)
    watcher.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if (event := jsonl.event(line)) is not None:
                on_event(event)
        return proc.wait()
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    finally:
        done.set()
        watcher.join()
