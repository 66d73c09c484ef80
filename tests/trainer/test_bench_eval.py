"""bench/bench_eval.py stays runnable: its --dry mode runs the real generator both ways on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ["variant", "processes", "base loads", "total s", "min–max", "start-up s", "load s", "generate s",
           "s / checkpoint", "answers", "answers/s", "tokens/s", "speed-up"]


def _table(stdout: str, first: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0]] + rows[2:]  # header, then the rows after the |---| line


@pytest.mark.timeout(600)
def test_dry_bench_times_one_load_against_a_process_per_checkpoint(tmp_path: Path):
    out = tmp_path / "bench.jsonl"
    res = subprocess.run([sys.executable, str(REPO / "bench" / "bench_eval.py"), "--dry", "--out", str(out)],
                         capture_output=True, text=True, timeout=590, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]

    header, *rows = _table(res.stdout, "variant")
    assert header == COLUMNS
    by_variant = {row[0]: dict(zip(header, row)) for row in rows}
    assert set(by_variant) == {"baseline", "ours"}
    ours, baseline = by_variant["ours"], by_variant["baseline"]
    # base + 2 checkpoints: one process (one base load) against three
    assert (ours["processes"], ours["base loads"], baseline["processes"], baseline["base loads"]) == ("1", "1", "3", "3")
    assert ours["answers"] == baseline["answers"] == str(3 * 2 * 2)  # 3 checkpoints x 2 prompts x (greedy + 1 sample)
    assert float(ours["answers/s"]) > 0 and float(ours["speed-up"].rstrip("x")) > 0
    assert baseline["speed-up"] == "1.00x"

    per_checkpoint = _table(res.stdout, "checkpoint")
    assert [row[0] for row in per_checkpoint[1:]] == ["base", "checkpoint-1", "checkpoint-2"]
    # switching adapters on one base answers exactly as a fresh load of each checkpoint does
    assert "answers identical in both variants: yes" in res.stdout
    assert "checkpoints answering differently from the base: 2 of 2" in res.stdout

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in lines] == ["baseline", "ours"]
    assert lines[1]["speed_up"] == pytest.approx(lines[0]["total_s"] / lines[1]["total_s"], rel=0.02)
