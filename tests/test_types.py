"""The type checker is part of the test gate: mypy on the whole package, with [tool.mypy] in pyproject.toml.

The first run checks everything (about a minute on a laptop core, the torch stack included); later
runs reuse mypy's incremental cache in .mypy_cache/ (git-ignored) and take seconds."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(400)
def test_mypy_finds_no_errors_in_the_package():
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"], cwd=REPO,
                            capture_output=True, text=True, timeout=380)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 0, "mypy found errors:\n" + "\n".join(errors or [result.stdout, result.stderr])


def test_the_gate_covers_our_code_and_silences_only_third_party_modules():
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["packages"] == ["zelda_tui"]
    assert not mypy.get("ignore_errors") and not mypy.get("ignore_missing_imports")
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not any(m.startswith("zelda_tui") for m in modules), override
        assert set(override) <= {"module", "ignore_missing_imports"}, override
