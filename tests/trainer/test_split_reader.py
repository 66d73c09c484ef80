"""The trainer reads a run's split files with core's JSONL reader: same line numbers, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from zelda_tui.backends.trainer.data import read_jsonl
from zelda_tui.core.errors import ZeldaError


def test_blank_lines_are_skipped_and_counted(tmp_path: Path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n  \n{"b": NaN}\n')
    assert read_jsonl(path)[0] == {"a": 1} and list(read_jsonl(path)[1]) == ["b"]
    path.write_bytes(b'{"a": 1}\n\n{"b": \n')
    with pytest.raises(ZeldaError) as err:
        read_jsonl(path)
    assert str(err.value) == f"{path}:3: not JSON (Expecting value)"


def test_bad_bytes_and_a_missing_file_are_one_line_errors(tmp_path: Path):
    path = tmp_path / "eval.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "\xff\xfe"}\n')
    with pytest.raises(ZeldaError, match=r"eval\.jsonl:2: not JSON \(.*codec can't decode"):
        read_jsonl(path)
    with pytest.raises(ZeldaError, match=r"missing\.jsonl: file not found"):
        read_jsonl(tmp_path / "missing.jsonl")
