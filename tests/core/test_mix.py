"""The mix builder against the original algorithm (bench.baselines.plain_mix_build), byte for byte."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from bench.baselines import plain_mix_build
from tests.conftest import write_jsonl
from zelda_tui.core import mix as mix_mod
from zelda_tui.core.config import load
from zelda_tui.core.errors import ZeldaError
from zelda_tui.services import build_services


def reference(cfg, spec) -> dict[str, bytes]:
    return plain_mix_build([(n, cfg.dataset(n).path) for n in spec.datasets], spec.seed, spec.eval_fraction, spec.min_eval_samples)


def assert_bundle_matches(out: Path, expected: dict[str, bytes]) -> None:
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name


def test_small_mix_is_byte_identical_and_metadata_complete(small_services):
    cfg = small_services.config
    spec = cfg.mix("small")
    built = small_services.datasets.mix_build("small")
    meta = built.metadata
    out = cfg.mix_dir("small")
    assert (built.out, built.name, built.total_train, built.total_eval) == (out, "small", 47, 6)
    assert_bundle_matches(out, reference(cfg, spec))
    on_disk = json.loads((out / "metadata.json").read_text())
    assert on_disk == meta
    assert built.to_json() == {"out": str(out), "metadata": on_disk}  # `mix build --json`
    assert set(meta) >= {"name", "created_at", "seed", "eval_fraction", "min_eval_samples", "datasets_root", "datasets",
                         "total_train", "total_eval", "total_records", "parse_errors_total", "outputs", "notes", "sha256"}
    # 40 -> round(4.0)=4 eval; 12 -> round(1.2)=1; 1 -> round(0.1)=0 raised to min 1, capped at 1
    assert [(d["name"], d["total"], d["train"], d["eval"]) for d in meta["datasets"]] == [
        ("alpha", 40, 36, 4), ("beta", 12, 11, 1), ("gamma", 1, 0, 1)]
    assert meta["total_train"] == 47 and meta["total_eval"] == 6 and meta["total_records"] == 53
    assert [d["ratio_percent"] for d in meta["datasets"]] == [round(40 / 53 * 100, 2), round(12 / 53 * 100, 2), round(1 / 53 * 100, 2)]
    for name in ("train.jsonl", "eval.jsonl", "val.jsonl", "eval_sources.txt"):
        assert meta["sha256"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()


def test_eval_sources_follow_eval_order(small_services):
    small_services.datasets.mix_build("small")
    out = small_services.config.mix_dir("small")
    sources = (out / "eval_sources.txt").read_text().splitlines()
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert len(sources) == len(evals) == 6
    assert [e["source"] for e in evals] == sources  # our fixture records carry their dataset name


def test_parse_errors_blank_lines_unicode_key_order(tmp_path: Path, small_ws: Path):
    ds = small_ws.parent / "datasets"
    write_jsonl(
        ds / "alpha.jsonl",
        [{"output": "ключ", "instruction": "z-first key order", "zz": [1, 2.5, None, True], "a": {"nested": "é→"}}]
        + [{"instruction": f"i{i}", "output": f"初期化 {i}"} for i in range(30)],
        ["", "not json", "  ", "[1, 2]", '{"instruction": "NaN ok", "output": "x", "v": NaN}', '{"instruction": "big", "output": "x", "n": 123456789012345678901234567890}'],
    )
    cfg = load(small_ws)
    spec = cfg.mix("small")
    services = build_services(small_ws)
    try:
        meta = services.datasets.mix_build("small").metadata
    finally:
        services.close()
    out = cfg.mix_dir("small")
    assert_bundle_matches(out, reference(cfg, spec))
    alpha = meta["datasets"][0]
    assert alpha["total"] == 33 and alpha["parse_errors"] == 2  # "not json" and the array
    text = (out / "train.jsonl").read_bytes() + (out / "eval.jsonl").read_bytes()
    assert text.isascii()
    assert b'{"output": "\\u043a\\u043b\\u044e\\u0447", "instruction": "z-first key order"' in text
    assert b'"v": NaN' in text and b"123456789012345678901234567890" in text


@pytest.mark.parametrize("fraction,min_eval", [(0.5, 0), (0.25, 3), (0.02, 1), (0.99, 0)])
def test_split_parameters_match_reference(small_ws: Path, fraction: float, min_eval: int):
    cfg = load(small_ws)
    spec = dataclasses.replace(cfg.mix("small"), eval_fraction=fraction, min_eval_samples=min_eval, seed=123)
    meta = mix_mod.build(cfg, spec)
    assert_bundle_matches(cfg.mix_dir("small"), reference(cfg, spec))
    assert meta["total_records"] == 53


def test_empty_dataset_and_single_record(small_ws: Path):
    (small_ws.parent / "datasets" / "beta.jsonl").write_bytes(b"\n\n")
    cfg = load(small_ws)
    meta = mix_mod.build(cfg, cfg.mix("small"))
    beta = meta["datasets"][1]
    assert (beta["total"], beta["train"], beta["eval"]) == (0, 0, 0)
    assert_bundle_matches(cfg.mix_dir("small"), reference(cfg, cfg.mix("small")))


def test_preview_matches_build_and_writes_nothing(small_services):
    cfg = small_services.config
    plan = small_services.datasets.mix_preview("small").to_json()
    assert not cfg.mix_dir("small").exists()
    meta = small_services.datasets.mix_build("small").metadata
    for key in ("total_train", "total_eval", "total_records", "parse_errors_total"):
        assert plan[key] == meta[key]
    assert [(d["name"], d["train"], d["eval"], d["ratio_percent"]) for d in plan["datasets"]] == [
        (d["name"], d["train"], d["eval"], d["ratio_percent"]) for d in meta["datasets"]]


def test_refuses_non_empty_out_without_overwrite(small_services, tmp_path: Path):
    out = tmp_path / "custom"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ZeldaError, match="not empty .*--overwrite"):
        small_services.datasets.mix_build("small", out=out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(ZeldaError, match=r"not replaced: it holds files a mix build did not write \(keep\.txt\)"):
        small_services.datasets.mix_build("small", out=out, overwrite=True)  # only a bundle we wrote is ever replaced
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    small_services.datasets.mix_build("small", out=out)
    small_services.datasets.mix_build("small", out=out, overwrite=True)  # our own bundle: replaced
    assert sorted(p.name for p in out.iterdir()) == sorted(mix_mod.BUNDLE_FILES)


def test_failed_build_leaves_previous_bundle_intact(small_services):
    cfg = small_services.config
    small_services.datasets.mix_build("small")
    out = cfg.mix_dir("small")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def explode(phase: str, done: int, total: int) -> None:
        if phase == "write":
            raise KeyboardInterrupt  # like a user pressing ctrl+c half-way through writing

    changed = dataclasses.replace(cfg.mix("small"), seed=1)
    with pytest.raises(KeyboardInterrupt):
        small_services.datasets.mix_build(changed, overwrite=True, progress=explode)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == [".small.lock", "small"]  # no temp dirs left


def test_kill_between_renames_is_recovered(small_services):
    cfg = small_services.config
    small_services.datasets.mix_build("small")
    out = cfg.mix_dir("small")
    before = (out / "train.jsonl").read_bytes()
    os.rename(out, out.with_name(".small.old"))  # the state a kill -9 between the two renames leaves
    with pytest.raises(ZeldaError, match="not empty"):
        small_services.datasets.mix_build("small")
    assert (out / "train.jsonl").read_bytes() == before


def test_missing_dataset_is_named(small_ws: Path):
    (small_ws.parent / "datasets" / "beta.jsonl").unlink()
    cfg = load(small_ws)
    with pytest.raises(ZeldaError, match=r"dataset 'beta' file not found: .*beta\.jsonl"):
        mix_mod.build(cfg, cfg.mix("small"))
    assert not cfg.mix_dir("small").exists()


def test_demo_locked_mix_reference_numbers(demo_ws: Path):
    services = build_services(demo_ws)
    try:
        plan = services.datasets.mix_preview("zelda_16b_mix_v1")
        meta = services.datasets.mix_build("zelda_16b_mix_v1").metadata
    finally:
        services.close()
    for result in (plan.to_json(), meta):
        assert result["total_train"] == 61_948
        assert result["total_eval"] == 1_264
        assert [d["ratio_percent"] for d in result["datasets"]] == [45.41, 17.47, 30.54, 6.16, 0.33, 0.08]
    cfg = load(demo_ws)
    assert_bundle_matches(cfg.mix_dir("zelda_16b_mix_v1"), reference(cfg, cfg.mix("zelda_16b_mix_v1")))
