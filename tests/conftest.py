"""Shared fixtures: real temp workspaces (config.toml + JSONL files + SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zelda_tui.demo import workspace as demo
from zelda_tui.services import build_services

# the `sshd` fixture (a real OpenSSH server on 127.0.0.1) for every test that needs a box
pytest_plugins = ["tests.remote.sshd"]


@pytest.fixture(scope="session")
def _no_gcloud_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("no-gcloud")


@pytest.fixture(autouse=True)
def _no_ambient_cloud_credentials(monkeypatch, _no_gcloud_dir: Path) -> None:
    """A developer's own gcloud login must not turn "no keys" tests into live GCP calls."""
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(_no_gcloud_dir))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)

REPO = Path(__file__).resolve().parent.parent


def write_jsonl(path: Path, rows: list, raw_lines: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + (raw_lines or [])
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


SMALL_CONFIG = """\
# small test workspace
[workspace]
datasets_dir = "datasets"          # relative to the config file

[model]
name = "tiny"
base = "local/tiny"
max_seq_len = 64

[datasets.alpha]
path = "alpha.jsonl"
tags = ["a"]

[datasets.beta]
path = "beta.jsonl"

[datasets.gamma]
path = "gamma.jsonl"

# the mix under test
[mix.small]
datasets = ["alpha", "beta", "gamma"]
eval_fraction = 0.1
min_eval_samples = 1
seed = 7
"""


def records(n: int, prefix: str) -> list[dict]:
    return [
        {"instruction": f"{prefix} task {i}", **({"input": f"ctx {i}"} if i % 3 == 0 else {}),
         "output": f"```asm\nLDA #${i:02X}\nSTA $7E0010\n```" if i % 2 else f"plain answer {i} é",
         "domain": ["asm", "ppu"][i % 2], "source": prefix}
        for i in range(n)
    ]


@pytest.fixture
def small_ws(tmp_path: Path) -> Path:
    """Three datasets (40/12/1 records) and one mix; returns the config path."""
    ds = tmp_path / "datasets"
    write_jsonl(ds / "alpha.jsonl", records(40, "alpha"))
    write_jsonl(ds / "beta.jsonl", records(12, "beta"))
    write_jsonl(ds / "gamma.jsonl", records(1, "gamma"))
    cfg = tmp_path / "config.toml"
    cfg.write_text(SMALL_CONFIG, encoding="utf-8")
    return cfg


@pytest.fixture
def small_services(small_ws: Path):
    services = build_services(small_ws)
    yield services
    services.close()


@pytest.fixture(scope="session")
def demo_ws_master(tmp_path_factory) -> Path:
    """The demo workspace, generated once per test session (read-only for tests)."""
    root = tmp_path_factory.mktemp("demo") / "ws"
    demo.init_workspace(root)
    return root / "config.toml"


@pytest.fixture
def demo_ws(demo_ws_master: Path, tmp_path: Path) -> Path:
    """A private copy of the demo workspace (datasets hard-linked; state and mixes fresh)."""
    src = demo_ws_master.parent
    dst = tmp_path / "demo"
    shutil.copytree(src / "datasets", dst / "datasets", copy_function=os.link)
    shutil.copy(demo_ws_master, dst / "config.toml")
    return dst / "config.toml"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ZELDA_TUI_CONFIG", None) if env is None or "ZELDA_TUI_CONFIG" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "zelda_tui", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )
