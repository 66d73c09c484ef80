"""A state.sqlite that cannot be used as asked gives one line naming the file and what to do, never a
traceback: locked past a short wait, not a database, damaged, read-only (issue 12, clear errors).
A read-only one still serves the commands that only read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zelda_tui.core.store import Store, StateError
from zelda_tui.services import build_services

from .test_money_safety import StateLock


def one_line_error(res: subprocess.CompletedProcess, *words: str) -> str:
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("zelda-tui: error")]
    assert len(lines) == 1, res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_not_a_database(small_ws: Path):
    state = small_ws.parent / "state.sqlite"
    state.write_bytes(b"these are my notes, not a database\n" * 200)
    res = run_cli("inventory", "--config", str(small_ws))
    one_line_error(res, str(state), "not a SQLite database", "move it aside")
    assert state.read_bytes().startswith(b"these are my notes")  # nothing of it was touched


def test_partly_corrupted_database(small_ws: Path):
    with build_services(small_ws) as services:
        services.datasets.scan()  # fills the QA cache: several pages
    state = small_ws.parent / "state.sqlite"
    data = bytearray(state.read_bytes())
    assert len(data) > 4 * 4096
    data[4096:] = b"\xa5" * (len(data) - 4096)  # every page but the first (header and schema) overwritten
    state.write_bytes(bytes(data))
    res = run_cli("train", "list", "--config", str(small_ws))
    one_line_error(res, str(state), "damaged")


def test_locked_past_a_short_wait(tmp_path: Path):
    Store(tmp_path / "state.sqlite").close()
    store = Store(tmp_path / "state.sqlite", busy_timeout_s=0.2)
    with StateLock(tmp_path / "state.sqlite"):
        with pytest.raises(StateError) as info:
            store.run_upsert("r", "/x", "local", "m", 0, None, "created")
    assert "locked by another process" in str(info.value) and str(tmp_path / "state.sqlite") in str(info.value)
    store.run_upsert("r", "/x", "local", "m", 0, None, "created")  # works again once released
    assert store.run_row("r")["state"] == "created"
    store.close()


NOBODY = 65534


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) runs the CLI as another user")
def test_read_only_database_serves_read_only_commands(small_ws: Path, tmp_path_factory):
    """As a user who may not write the file (root ignores file modes, so the CLI runs as nobody)."""
    ws = tmp_path_factory.mktemp("shared-ws")
    os.chmod(ws, 0o755)
    shutil.copytree(small_ws.parent, ws / "w")
    cfg = ws / "w" / "config.toml"
    with build_services(cfg) as services:
        services.datasets.scan()
    os.chmod(ws / "w", 0o755)
    for path in (ws / "w").rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o444)
    os.chmod(ws / "w" / "state.sqlite", 0o444)
    for parent in ws.parents:  # nobody must reach the workspace
        if not os.access(parent, os.X_OK) or (parent.stat().st_mode & 0o001) == 0:
            os.chmod(parent, parent.stat().st_mode | 0o001)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-m", "zelda_tui"]
    env = {**os.environ, "HOME": str(ws)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_nobody, *args, "--config", str(cfg)], capture_output=True, text=True, env=env,
                              cwd=ws, timeout=120)

    check = run("config", "check")
    assert check.returncode == 0, check.stderr
    inventory = run("inventory")
    assert inventory.returncode == 0, inventory.stderr
    assert "alpha" in inventory.stdout
    write = subprocess.run([*as_nobody[:-2], "-c", "import sys\nfrom zelda_tui.core.store import Store\n"
                            "try:\n Store(sys.argv[1]).run_upsert('r', '/x', 'local', 'm', 0, None, 'created')\n"
                            "except Exception as exc:\n print(type(exc).__name__, exc)", str(ws / "w" / "state.sqlite")],
                           capture_output=True, text=True, env=env, cwd=ws, timeout=60)
    assert write.stdout.startswith("StateError") and "read-only" in write.stdout, write.stdout + write.stderr
