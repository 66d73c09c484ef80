"""Eval services without a model: scoring hand-written answer files with the real validator,
ranking with the base row, prompt sets from a mix, and the paths that must fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evals_seed import ANSWERS, EMPTY, GOOD_LOOP, MODEL, PROMPTS, make_run, seed_results, write_answers
from zelda_tui.core import evals
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.evals import GenerateOptions


def test_answers_are_validated_scored_and_stored(small_services, small_ws: Path):
    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z")
    seed_results(small_services, run_dir)
    rows = small_services.evals.samples(run_dir.name, "checkpoint-2", "demo_prompts")
    assert [(r.prompt_idx, r.sample) for r in rows] == [(i, s) for i in range(4) for s in range(3)]
    greedy = {r.prompt_idx: r for r in rows if r.sample == 0}
    assert [greedy[i].verdict for i in range(4)] == ["assembles", "syntax_error", "unresolved_label", "syntax_error"]
    assert greedy[1].line == 2 and "FOOBAR" in greedy[1].errors[0] and greedy[1].checker in ("asar", "precheck")
    assert greedy[1].code.split("\n")[1].strip() == "FOOBAR $12"  # the line numbers refer to the snippet
    assert [greedy[i].match for i in range(4)] == [True, False, True, None]  # prompt 3 has no reference
    assert greedy[2].prompt == "Spawn a sprite.\n\nUse the vanilla spawner." and greedy[2].category == "sprite_logic"

    base = {r.prompt_idx: r for r in small_services.evals.samples(run_dir.name, "base", "demo_prompts") if r.sample == 0}
    assert base[0].verdict == "empty" and base[0].answer == EMPTY  # an empty answer is a verdict, not a crash

    board = small_services.evals.leaderboard()
    assert board.prompt_set == "demo_prompts" and board.prompt_sets == ["demo_prompts"]
    top = board.rows
    assert [(r.rank, r.checkpoint) for r in top] == [(1, "checkpoint-4"), (2, "checkpoint-2"), (3, "base")]
    best = top[0]
    assert best.assemble_rate == 0.75 and best.rates["unresolved_label"] == 0.25
    # sampled answers: prompt 0 passes 1 of 2, prompt 2 passes 1 of 2 -> pass@1 = (0.5 + 0 + 0.5 + 0) / 4
    assert best.pass_at_1 == pytest.approx(0.25) and best.pass_at_k == pytest.approx(0.5)
    assert best.match_rate == pytest.approx(1.0) and (best.matched, best.with_reference) == (3, 3)
    assert best.eval_loss == pytest.approx(0.75) and best.eval_loss_by_dataset == {"gold": 0.625, "oos": 0.875}
    assert top[2].is_base and top[2].eval_loss is None and top[2].model == MODEL
    by_loss = small_services.evals.leaderboard(sort="eval_loss").rows
    assert [r.checkpoint for r in by_loss] == ["checkpoint-4", "checkpoint-2", "base"]


def test_rescoring_is_skipped_and_a_second_run_shares_the_base_row(small_services, small_ws: Path):
    first = make_run(small_ws.parent, "tiny_20260101T000000Z")
    seed_results(small_services, first)
    stored = small_services.store.eval_summary(first.name, "checkpoint-4", "demo_prompts")
    small_services.evals.ingest(first, "demo_prompts", "checkpoint-4")  # same answers file: nothing re-validated
    assert small_services.store.eval_summary(first.name, "checkpoint-4", "demo_prompts")["created"] == stored["created"]

    second = make_run(small_ws.parent, "tiny_20260102T000000Z", steps=(3,))
    seed_results(small_services, second, answers={"base": ANSWERS["base"], "checkpoint-3": [GOOD_LOOP] * 4})
    rows = small_services.evals.leaderboard().rows
    assert [(r.run, r.checkpoint) for r in rows] == [
        (second.name, "checkpoint-3"), (first.name, "checkpoint-4"), (first.name, "checkpoint-2"), (second.name, "base")]


def test_eval_run_reuses_complete_answers_without_starting_the_generator(small_services, small_ws: Path):
    """Answers already there for the same request: scored straight away (no torch needed)."""
    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z")
    prompts = small_ws.parent / "my set.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    write_answers(run_dir, "my_set", ANSWERS)
    report = small_services.evals.run(run_dir.name, "all", prompts, GenerateOptions(samples=0, max_new_tokens=64))
    assert report.prompt_set == "my_set" and report.prompts == 4 and not report.problems
    assert [(c.checkpoint, c.step, c.state) for c in report.checkpoints] == [
        ("base", 0, "reused"), ("checkpoint-2", 2, "reused"), ("checkpoint-4", 4, "reused")]
    assert report.checkpoints[2].summary is not None and report.checkpoints[2].summary.assemble_rate == 0.75
    assert not (evals.eval_dir(run_dir, "my_set") / evals.GENERATE_LOG).exists()
    only = small_services.evals.run(run_dir.name, "4,base", prompts, GenerateOptions(samples=0, max_new_tokens=64))
    assert [c.checkpoint for c in only.checkpoints] == ["checkpoint-4", "base"]


def test_eval_run_errors_name_what_is_wrong(small_services, small_ws: Path, tmp_path: Path):
    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z")
    with pytest.raises(ZeldaError, match=r"no checkpoint '7' \(complete ones: base, checkpoint-2, checkpoint-4\)"):
        small_services.evals.run(run_dir.name, "7")
    with pytest.raises(ZeldaError, match="no run 'nope'"):
        small_services.evals.run("nope")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": 3}\n')
    with pytest.raises(ZeldaError, match=r"bad.jsonl:1: field `instruction` must be a non-empty string"):
        small_services.evals.run(run_dir.name, "base", bad)
    with pytest.raises(ZeldaError, match="--samples must be >= 0"):
        small_services.evals.run(run_dir.name, "base", None, GenerateOptions(samples=-1))
    with pytest.raises(ZeldaError, match="no eval results for prompt set 'other'"):
        small_services.evals.leaderboard("other")


def test_stale_answers_are_refused(small_services, small_ws: Path):
    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z")
    write_answers(run_dir, "s", {"base": ANSWERS["base"]})
    edir = evals.eval_dir(run_dir, "s")
    (edir / evals.PROMPTS_FILE).write_text((edir / evals.PROMPTS_FILE).read_text().replace("clears 16", "clears 32"))
    with pytest.raises(ZeldaError, match="another version of s"):
        small_services.evals.ingest(run_dir, "s", "base")
    assert small_services.evals.samples(run_dir.name, "base", "s") == []


def test_prompt_file_from_a_mix_eval_split(small_services, small_ws: Path):
    out = small_ws.parent / "held_out.jsonl"
    count, path = small_services.evals.prompts_from_mix("small", out)
    assert path == out and (small_ws.parent / "mixes" / "small" / "metadata.json").is_file()  # built on the way
    pf = evals.parse_prompts(out)
    assert len(pf.prompts) == count == len((small_ws.parent / "mixes" / "small" / "eval.jsonl").read_text().splitlines())
    assert not pf.problems
    sources = (small_ws.parent / "mixes" / "small" / "eval_sources.txt").read_text().split()
    assert [p.extra["dataset"] for p in pf.prompts] == sources
    assert all(p.reference for p in pf.prompts) and {p.category for p in pf.prompts} <= {"asm", "ppu"}
    with pytest.raises(ZeldaError, match="unknown mix 'nope'"):
        small_services.evals.prompts_from_mix("nope", out)


def test_a_remote_runs_eval_goes_to_its_box_not_to_the_copy_here(small_services, tmp_path: Path):
    """Its checkpoints are on the box (nothing fetched): the eval asks the box, and an unreachable
    box is one line naming it (the end-to-end remote eval is tests/trainer/test_remote_eval.py)."""
    import shutil

    from zelda_tui.core import runs

    run_dir = make_run(small_services.config.workspace, "remote_20260101T000000Z")
    shutil.rmtree(run_dir / runs.CHECKPOINTS)  # the mirror has the logs; the checkpoints are still on the box
    small_services.store.run_upsert(run_dir.name, str(run_dir), "no-such-box.invalid", "small", 0, 1, "completed",
                                    "/opt/training/models/remote_20260101T000000Z")
    with pytest.raises(ZeldaError, match=r"^no-such-box.invalid: cannot connect: [^\n]*$"):
        small_services.evals.run(run_dir.name, "all")
