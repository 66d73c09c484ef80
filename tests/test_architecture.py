"""The layer rule (import-linter contracts in pyproject.toml) and the light base install."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_base_install_does_not_pull_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    heavy = {"torch", "transformers", "peft", "bitsandbytes", "trl", "datasets", "accelerate"}
    base = {dep.split("[")[0].split("=")[0].split(">")[0].split("<")[0].split(";")[0].strip().lower() for dep in project["dependencies"]}
    assert not base & heavy
    train = {dep.split("=")[0].split(">")[0].strip().lower() for dep in project["optional-dependencies"]["train"]}
    assert heavy <= train
    # a range for the boxes (their image's or their driver's torch), the dev machines' CPU pin in the test setup only
    assert "torch>=2.6" in project["optional-dependencies"]["train"]
    assert not any("==" in d for d in project["optional-dependencies"]["train"] if d.startswith("torch"))
    makefile = (REPO / "Makefile").read_text()
    assert "TEST_TORCH = torch==2.13.0" in makefile
    assert makefile.index('install -q "$(TEST_TORCH)"') < makefile.index('install -q -e ".[dev,train]"')
    assert project["scripts"]["zelda-tui"] == "zelda_tui.cli:main"


def test_importing_the_app_does_not_import_torch():
    code = "import sys, zelda_tui.app, zelda_tui.cli; print(any(m.split('.')[0] in {'torch','transformers','peft','trl'} for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# What a path to a sibling of the repo looks like in our sources: a parent-relative shared folder, the repo root
# path's parent joined with one, `parents[2].parent`, or an absolute path into the machine we develop on.
OUTSIDE_REPO = re.compile(
    r"\.\./shared|[\"']shared[\"']\s*/|(REPO|ROOT|parents\[\d\])\.parent\b|/work/|\.library/"
)


def test_nothing_reads_outside_the_repo():
    """A user's clone has nothing beside it: tests, scripts, benches, CI and the code only name repo paths."""
    roots = [REPO / d for d in ("tests", "scripts", "bench", ".ci", "zelda_tui")] + [REPO / "Makefile", REPO / "pyproject.toml"]
    offenders = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix in {".pyc", ".svg", ".whl"} or "fixtures" in path.relative_to(REPO).parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if OUTSIDE_REPO.search(line) and path != Path(__file__):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not offenders, "paths outside the repo:\n" + "\n".join(offenders)
