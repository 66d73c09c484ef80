"""QA statistics on hand-made files covering every kind of bad input, plus the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.baselines import plain_qa
from tests.conftest import write_jsonl
from zelda_tui.core import qa
from zelda_tui.core.jsonl import chunks, read_chunk
from zelda_tui.services import build_services

LONG = "x" * 900  # 900 chars -> 281 estimated tokens + 8 > max_seq_len 64


def messy_file(path: Path) -> Path:
    rows = [
        {"instruction": "Write a loop", "output": "```asm\nLDX #$10\n-\nDEX\nBNE -\n```", "domain": "asm", "source": "s1"},  # 1
        {"instruction": "Écris 初期化", "input": "```\nSEP #$20\n```", "output": "ok → done", "domain": "asm"},  # 2
    ]
    raw = [
        "",  # 3 blank
        "   ",  # 4 blank (whitespace)
        '{"instruction": "broken", "output": ',  # 5 parse error
        "[1, 2, 3]",  # 6 not an object
        '{"instruction": "nulls", "output": "fine", "domain": null, "source": 5}',  # 7 wrong types
        '{"instruction": 42, "output": "num instr"}',  # 8 wrong type instruction
        '{"output": "no instruction"}',  # 9 missing instruction
        '{"instruction": "empty out", "output": ""}',  # 10 missing output (empty)
        json.dumps({"instruction": "Write a loop", "output": "```asm\nLDX #$10\n-\nDEX\nBNE -\n```", "domain": "x"}),  # 11 dup of 1
        json.dumps({"instruction": "long", "output": LONG, "domain": "asm"}),  # 12 long
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "```\nNOP\n```"}]}),  # 13 chat
        '{"messages": "not a list"}',  # 14 bad chat
        '{"instruction": "in", "input": 7, "output": "o"}',  # 15 wrong type input
    ]
    write_jsonl(path, rows, raw)
    return path


@pytest.fixture
def report(tmp_path: Path) -> dict:
    path = messy_file(tmp_path / "messy.jsonl")
    return qa.finish(qa.scan_chunk(path.read_bytes()), max_seq_len=64)


def test_counts_and_problem_lines(report: dict):
    assert report["lines"] == 15
    assert report["blank_lines"] == 2
    assert report["parse_errors"] == {"count": 1, "lines": [5]}
    assert report["not_object"] == {"count": 1, "lines": [6]}
    # records = every JSON object that is a usable sample shape (bad chat records are not)
    assert report["records"] == 10
    assert report["chat_records"] == 1
    assert report["missing"] == {"instruction": {"count": 1, "lines": [9]}, "output": {"count": 1, "lines": [10]}}
    assert report["wrong_type"] == {
        "domain": {"count": 1, "lines": [7]},
        "input": {"count": 1, "lines": [15]},
        "instruction": {"count": 1, "lines": [8]},
        "messages": {"count": 1, "lines": [14]},
        "source": {"count": 1, "lines": [7]},
    }


def test_field_stats_count_characters_not_bytes(report: dict):
    ins = report["fields"]["instruction"]
    assert ins["max_chars"] == len("Write a loop")
    # "Écris 初期化" is 9 characters (15 bytes in UTF-8)
    assert len("Écris 初期化") == 9
    out = report["fields"]["output"]
    assert out["max_chars"] == 900 and out["max_line"] == 12
    assert out["code_blocks"] == 3  # lines 1, 11 and the chat answer on 13
    n = len("```\nSEP #$20\n```")
    assert report["fields"]["input"] == {"present": 1, "avg_chars": float(n), "max_chars": n, "max_line": 2, "code_blocks": 1}
    assert report["input_present"] == 1


def test_labels_duplicates_and_length(report: dict):
    assert report["domains"]["asm"] == 3
    assert report["domains"]["(invalid)"] == 1
    assert report["domains"]["x"] == 1
    assert report["sources"]["(invalid)"] == 1
    assert report["exact_duplicates"] == 1
    length = report["length"]
    assert length["method"] == "estimate (3.2 chars/token)"
    assert length["over_max"] == 1
    assert length["max_tokens"] == int((len("long") + 900) / 3.2) + 8
    assert sum(length["buckets"].values()) == report["records"]


def test_chunked_scan_equals_single_scan(tmp_path: Path):
    path = messy_file(tmp_path / "messy.jsonl")
    whole = qa.finish(qa.scan_chunk(path.read_bytes()), 64)
    for parts in (2, 3, 7):
        merged = qa.ChunkStats()
        cs = chunks(path, path.stat().st_size, parts)
        assert len(cs) > 1
        for c in cs:
            part = qa.scan_chunk(read_chunk(c))
            part.offset(merged.lines)
            merged.merge(part)
        assert qa.finish(merged, 64) == whole


def test_empty_and_no_trailing_newline(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    r = qa.finish(qa.scan_chunk(empty.read_bytes()), 64)
    assert r["records"] == 0 and r["lines"] == 0 and r["length"]["max_tokens"] == 0
    r = qa.finish(qa.scan_chunk(b'{"instruction": "a", "output": "b"}'), 64)
    assert r["records"] == 1 and r["lines"] == 1


def test_crlf_lines_parse(tmp_path: Path):
    r = qa.finish(qa.scan_chunk(b'{"instruction": "a", "output": "b"}\r\n\r\n{"instruction": "c", "output": "d"}\r\n'), 64)
    assert r["records"] == 2 and r["parse_errors"]["count"] == 0 and r["blank_lines"] == 1


def test_agrees_with_plain_baseline_on_demo_data(demo_ws: Path):
    """Two independent implementations of the same statistics must agree."""
    services = build_services(demo_ws)
    try:
        reports = services.datasets.scan()
    finally:
        services.close()
    for r in reports:
        plain = plain_qa(Path(r.path), services.config.model.max_seq_len)
        q = r.qa
        assert q["records"] == plain["records"], r.name
        assert q["exact_duplicates"] == plain["exact_duplicates"], r.name
        assert q["domains"] == dict(plain["domains"]), r.name
        assert q["sources"] == dict(plain["sources"]), r.name
        assert q["length"]["over_max"] == plain["over_max"], r.name
        for f, fs in plain["fields"].items():
            assert q["fields"][f]["present"] == fs["present"], (r.name, f)
            assert q["fields"][f]["max_chars"] == fs["max"], (r.name, f)
            assert q["fields"][f]["code_blocks"] == fs["code"], (r.name, f)
            assert q["fields"][f]["avg_chars"] == round(fs["chars"] / max(fs["present"], 1), 1), (r.name, f)


def test_cache_hit_parses_nothing_and_change_rescans(small_ws: Path):
    services = build_services(small_ws)
    try:
        first = {r.name: r for r in services.datasets.scan()}
        assert not any(r.cached for r in first.values())
        alpha = Path(first["alpha"].path)
        st = alpha.stat()
        # Same size and mtime but different content: a warm scan must not read the file.
        original = alpha.read_bytes()
        alpha.write_bytes(b"x" * len(original))
        os.utime(alpha, ns=(st.st_atime_ns, st.st_mtime_ns))
        warm = {r.name: r for r in services.datasets.scan()}
        assert all(r.cached for r in warm.values())
        assert warm["alpha"].qa == first["alpha"].qa
        # A real change (new mtime) is picked up: the garbage now shows as parse errors.
        os.utime(alpha, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        changed = {r.name: r for r in services.datasets.scan()}
        assert not changed["alpha"].cached
        assert changed["alpha"].qa["parse_errors"]["count"] == 1
        assert changed["alpha"].records == 0
    finally:
        services.close()


def test_missing_and_unreadable_datasets_are_reported_not_raised(small_ws: Path):
    (small_ws.parent / "datasets" / "beta.jsonl").unlink()
    (small_ws.parent / "datasets" / "gamma.jsonl").unlink()
    (small_ws.parent / "datasets" / "gamma.jsonl").mkdir()
    services = build_services(small_ws)
    try:
        reports = {r.name: r for r in services.datasets.scan()}
    finally:
        services.close()
    assert reports["alpha"].records == 40
    assert reports["beta"].error.endswith("beta.jsonl: file not found")
    assert "gamma.jsonl: not a regular file" in reports["gamma"].error
