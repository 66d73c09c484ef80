"""The app in a real terminal (tmux): starts, draws at 80x24, switches screens, quits cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

if shutil.which("tmux") is None:
    if os.environ.get("CI"):
        raise RuntimeError("tmux is required in CI (scripts/system-deps.sh installs it)")
    pytest.skip("tmux not installed (make system-deps)", allow_module_level=True)


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30).stdout


def wait_for(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; screen was:\n{screen}")


def test_app_in_real_terminal(small_ws: Path):
    session = f"zelda-{uuid.uuid4().hex[:8]}"
    cmd = f"{sys.executable} -m zelda_tui --config {small_ws}; echo EXITED=$?; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    try:
        screen = wait_for(session, "3 datasets · 53 records")
        assert "alpha" in screen and "gamma" in screen
        assert len(screen.splitlines()[0]) <= 80
        tmux("send-keys", "-t", session, "2")
        screen = wait_for(session, "train 47 · eval 6")
        tmux("send-keys", "-t", session, "3")
        wait_for(session, "sort $/h")
        tmux("send-keys", "-t", session, "q")
        wait_for(session, "EXITED=0")
    finally:
        tmux("kill-session", "-t", session)


def mouse_requested(session: str) -> bool:
    """Whether the program in the pane asked the terminal for mouse events (tmux tracks the mode)."""
    return tmux("display-message", "-p", "-t", session, "#{mouse_any_flag}#{mouse_button_flag}#{mouse_standard_flag}"
                ).strip() not in ("", "000")


def test_mouse_capture_off_leaves_selection_to_the_terminal(small_ws: Path):
    """`[ui] mouse = false` starts without asking the terminal for mouse events (so its own selection
    works over SSH); `M` asks for them again and a second `M` gives them back."""
    small_ws.write_text(small_ws.read_text() + "\n[ui]\nmouse = false\n")
    session = f"zelda-{uuid.uuid4().hex[:8]}"
    cmd = f"{sys.executable} -m zelda_tui --config {small_ws}; echo EXITED=$?; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd)
    try:
        wait_for(session, "3 datasets · 53 records")
        assert not mouse_requested(session)
        tmux("send-keys", "-t", session, "M")
        deadline = time.monotonic() + 10
        while not mouse_requested(session) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mouse_requested(session)
        tmux("send-keys", "-t", session, "M")
        deadline = time.monotonic() + 10
        while mouse_requested(session) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not mouse_requested(session)
        tmux("send-keys", "-t", session, "q")
        wait_for(session, "EXITED=0")
    finally:
        tmux("kill-session", "-t", session)
