"""Tests for the deterministic demo dataset generator (zelda_tui.demo.data)."""

from __future__ import annotations

import ast
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zelda_tui.demo import data as demo_data
from zelda_tui.demo.data import DEMO_DATASETS, iter_demo_records, write_demo_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS_WITH_INPUT = ["instruction", "input", "output", "domain", "source"]
KEYS_WITHOUT_INPUT = ["instruction", "output", "domain", "source"]


@pytest.fixture(scope="module")
def all_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write all six demo datasets once (seed 0) and report how long it took."""
    out = tmp_path_factory.mktemp("demo")
    files = {}
    t0 = time.perf_counter()
    for name, count in DEMO_DATASETS:
        files[name] = out / f"{name}.jsonl"
        write_demo_dataset(files[name], name, count, seed=0)
    elapsed = time.perf_counter() - t0
    total = sum(c for _, c in DEMO_DATASETS)
    print(f"\n[demo_data] wrote all six datasets ({total} records) in {elapsed:.2f}s")
    files["__elapsed__"] = elapsed  # type: ignore[assignment]
    return files


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def test_dataset_table_matches_spec() -> None:
    assert DEMO_DATASETS == (
        ("vultr_train_full", 28707),
        ("vultr_gold_full", 11044),
        ("oos_enriched_v1_normalized_notodo", 19303),
        ("asm_gold_asar_pass_20260102", 3894),
        ("nerv_watcher_v1", 211),
        ("expert_router_v1", 53),
    )


@pytest.mark.parametrize("count", [0, 1, 7, 53])
def test_iter_yields_exact_count(count: int) -> None:
    assert sum(1 for _ in iter_demo_records("vultr_train_full", count, seed=3)) == count


def test_negative_count_rejected() -> None:
    with pytest.raises(ValueError):
        list(iter_demo_records("expert_router_v1", -1, seed=0))


def test_real_sizes_have_exact_line_counts(all_files: dict[str, Path]) -> None:
    for name, count in DEMO_DATASETS:
        data = all_files[name].read_bytes()
        assert data.endswith(b"\n")
        assert data.count(b"\n") == count, name


def test_generation_of_all_six_is_fast(all_files: dict[str, Path]) -> None:
    # The target is ~6 s on one core; the bound is generous so slow CI machines do not flake,
    # but an accidental quadratic step or per-record heavy work would still blow through it.
    assert all_files["__elapsed__"] < 30.0  # type: ignore[operator]


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_demo_dataset(a, "oos_enriched_v1_normalized_notodo", 1500, seed=11)
    write_demo_dataset(b, "oos_enriched_v1_normalized_notodo", 1500, seed=11)
    write_demo_dataset(c, "oos_enriched_v1_normalized_notodo", 1500, seed=12)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_different_names_give_different_data() -> None:
    first = [json.dumps(r) for r in iter_demo_records("vultr_train_full", 50, seed=0)]
    second = [json.dumps(r) for r in iter_demo_records("vultr_gold_full", 50, seed=0)]
    assert first != second


def test_deterministic_across_processes(tmp_path: Path) -> None:
    """A fresh interpreter with a different hash seed must produce the same bytes."""
    here = tmp_path / "here.jsonl"
    there = tmp_path / "there.jsonl"
    write_demo_dataset(here, "vultr_train_full", 2500, seed=7)
    code = (
        "import sys; from pathlib import Path; "
        "from zelda_tui.demo.data import write_demo_dataset; "
        "write_demo_dataset(Path(sys.argv[1]), 'vultr_train_full', 2500, 7)"
    )
    env = dict(os.environ, PYTHONHASHSEED="4242", PYTHONPATH=str(REPO_ROOT))
    subprocess.run([sys.executable, "-c", code, str(there)], check=True, env=env, cwd=tmp_path)
    assert here.read_bytes() == there.read_bytes()


def test_every_line_is_a_well_formed_ascii_record(all_files: dict[str, Path]) -> None:
    for name, _ in DEMO_DATASETS:
        raw = all_files[name].read_bytes()
        assert all(byte < 128 for byte in raw), f"{name} is not pure ASCII"
        for lineno, line in enumerate(raw.decode("ascii").splitlines(), 1):
            rec = json.loads(line)
            assert isinstance(rec, dict)
            assert list(rec) in (KEYS_WITH_INPUT, KEYS_WITHOUT_INPUT), (name, lineno, list(rec))
            for key in rec:
                assert isinstance(rec[key], str), (name, lineno, key)
            assert rec["instruction"].strip(), (name, lineno)
            assert rec["output"].strip(), (name, lineno)
            assert rec["domain"] and rec["source"]
            # The file holds exactly json.dumps(record, ensure_ascii=True) per line.
            assert json.dumps(rec, ensure_ascii=True) == line


def test_big_datasets_are_varied(all_files: dict[str, Path]) -> None:
    for name in ("vultr_train_full", "oos_enriched_v1_normalized_notodo", "asm_gold_asar_pass_20260102"):
        recs = _records(all_files[name])
        domains = collections.Counter(r["domain"] for r in recs)
        sources = collections.Counter(r["source"] for r in recs)
        assert len(domains) >= 5, (name, domains)
        assert len(sources) >= 2, (name, sources)
        input_share = sum("input" in r for r in recs) / len(recs)
        assert 0.18 <= input_share <= 0.38, (name, input_share)
        fenced = sum("```" in r["output"] for r in recs) / len(recs)
        assert fenced >= 0.6, (name, fenced)
        distinct_instr = len({r["instruction"] for r in recs})
        assert distinct_instr > 0.5 * len(recs), (name, distinct_instr)


def test_length_distribution_has_a_body_and_a_tail(all_files: dict[str, Path]) -> None:
    recs = _records(all_files["asm_gold_asar_pass_20260102"])
    out_lens = sorted(len(r["output"]) for r in recs)
    instr_lens = sorted(len(r["instruction"]) for r in recs)
    median_out = out_lens[len(out_lens) // 2]
    median_instr = instr_lens[len(instr_lens) // 2]
    assert 200 <= median_out <= 2500
    assert 40 <= median_instr <= 300
    long_outputs = [n for n in out_lens if n > 8000]
    assert long_outputs, "expected at least one output longer than 8000 chars"
    assert len(long_outputs) / len(recs) < 0.03
    assert max(out_lens) <= 40000


def test_outputs_contain_plausible_65816(all_files: dict[str, Path]) -> None:
    text = "\n".join(r["output"] for r in _records(all_files["vultr_gold_full"]))
    for token in ("```asm", "LDA", "STA", "REP #$", "SEP #$", "RTL", "RTS", "JSL", "MVN", "PHB", "PLB",
                  "BPL .loop", ",X", "org $", "pushpc", "pullpc", "db ", "dw ", ".w ", ".l ", "+\n"):
        assert token in text, token


def test_duplicates_only_in_larger_datasets(all_files: dict[str, Path]) -> None:
    for name in ("vultr_train_full", "oos_enriched_v1_normalized_notodo", "asm_gold_asar_pass_20260102"):
        lines = all_files[name].read_text(encoding="ascii").splitlines()
        dup_share = (len(lines) - len(set(lines))) / len(lines)
        assert 0.001 <= dup_share <= 0.015, (name, dup_share)
    for name in ("nerv_watcher_v1", "expert_router_v1"):
        lines = all_files[name].read_text(encoding="ascii").splitlines()
        assert len(lines) == len(set(lines)), name


def test_some_records_carry_unicode(all_files: dict[str, Path]) -> None:
    raw = all_files["vultr_train_full"].read_text(encoding="ascii")
    assert "\\u" in raw  # escaped by ensure_ascii=True
    recs = _records(all_files["vultr_train_full"])
    with_unicode = [r for r in recs if any(ord(ch) > 127 for ch in r["instruction"] + r["output"])]
    assert 0 < len(with_unicode) < 0.05 * len(recs)


def test_each_dataset_has_its_own_flavour(all_files: dict[str, Path]) -> None:
    def top(name: str, key: str) -> collections.Counter:
        return collections.Counter(r[key] for r in _records(all_files[name]))

    router = _records(all_files["expert_router_v1"])
    assert {r["domain"] for r in router} == {"routing"}
    assert all(len(r["output"]) < 200 for r in router)
    assert top("nerv_watcher_v1", "domain").most_common(1)[0][0] == "debugging"
    assert top("nerv_watcher_v1", "source").most_common(1)[0][0] == "nerv_watch_logs"
    oos_domains = top("oos_enriched_v1_normalized_notodo", "domain")
    assert oos_domains.most_common(1)[0][0] in ("oos_items", "oos_dungeons")
    assert top("oos_enriched_v1_normalized_notodo", "source").most_common(1)[0][0] == "oos_disasm"
    assert top("asm_gold_asar_pass_20260102", "source").most_common(1)[0][0] == "asar_verified"
    assert top("vultr_train_full", "source").most_common(1)[0][0] == "vultr_gen_v2"
    assert top("vultr_gold_full", "source").most_common(1)[0][0] == "gold_curated"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "data.jsonl"
    write_demo_dataset(target, "expert_router_v1", 53, seed=1)
    first = target.read_bytes()
    # Overwrite in place: the file is replaced, nothing else is left in the directory.
    write_demo_dataset(target, "expert_router_v1", 10, seed=2)
    assert target.read_bytes() != first
    assert target.read_bytes().count(b"\n") == 10
    assert [p.name for p in target.parent.iterdir()] == ["data.jsonl"]


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "data.jsonl"
    target.write_text("previous\n", encoding="ascii")
    with pytest.raises(ValueError):
        write_demo_dataset(target, "nerv_watcher_v1", -5, seed=0)
    assert target.read_text(encoding="ascii") == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(demo_data.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported, "expected some imports"
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
