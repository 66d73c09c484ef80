"""Eval scoring, pure parts: prompt files, pass@k, normalised match, summaries, ranking, storage."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from zelda_tui.core import evals, leaderboard, runs
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.store import Store


# --- prompt files ------------------------------------------------------------------------------


def test_prompt_file_bad_lines_are_named_and_skipped(tmp_path: Path):
    path = tmp_path / "set one.jsonl"
    path.write_text(
        json.dumps({"instruction": "Write a loop", "reference": "```asm\nDEX\n```", "category": "loops"}) + "\n"
        "\n"
        "{not json\n"
        + json.dumps({"input": "LDA #$00"}) + "\n"
        + json.dumps({"instruction": "Explain", "input": "LDA #$00", "reference": 5}) + "\n"
        + json.dumps(["a list"]) + "\n"
        + json.dumps({"instruction": "   "}) + "\n"
        + json.dumps({"instruction": "Fix it", "input": "BNE -", "id": "p7", "source": "kept"}) + "\n",
        encoding="utf-8")
    pf = evals.parse_prompts(path)
    assert pf.name == "set_one"
    assert [(p.idx, p.line, p.instruction) for p in pf.prompts] == [(0, 1, "Write a loop"), (6, 8, "Fix it")]
    assert pf.prompts[0].reference == "```asm\nDEX\n```" and pf.prompts[0].category == "loops"
    assert pf.prompts[1].user_text() == "Fix it\n\nBNE -" and pf.prompts[1].id == "p7"
    assert pf.prompts[1].extra == {"source": "kept"}
    assert pf.problems == [
        f"{path}:3: not JSON (Expecting property name enclosed in double quotes: column 2)",
        f"{path}:4: field `instruction` missing",
        f"{path}:5: field `reference` must be a string, got int",
        f"{path}:6: expected a JSON object, got list",
        f'{path}:7: field `instruction` must be a non-empty string, got "   "',
    ]
    # the index of a prompt survives a fixed line above it (results stay comparable)
    fixed = path.read_text().replace("{not json", json.dumps({"instruction": "now fine"}))
    path.write_text(fixed)
    again = evals.parse_prompts(path)
    assert [(p.idx, p.instruction) for p in again.prompts] == [(0, "Write a loop"), (1, "now fine"), (6, "Fix it")]


def test_prompt_file_without_a_valid_prompt_is_an_error(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ZeldaError, match=r"empty.jsonl: no prompts"):
        evals.parse_prompts(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x"}\n')
    with pytest.raises(ZeldaError, match=r"bad.jsonl:1: field `instruction` missing \(and no valid prompt"):
        evals.parse_prompts(bad)
    with pytest.raises(ZeldaError, match="file not found"):
        evals.parse_prompts(tmp_path / "missing.jsonl")


def test_eval_prompts_round_trip(tmp_path: Path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"instruction": "a", "reference": "r", "category": "c"}, {"instruction": "b"}])
    pf = evals.parse_prompts(src)
    out = tmp_path / "evals" / "prompts.jsonl"
    out.parent.mkdir()
    out.write_text(evals.prompts_jsonl(pf.prompts))
    back = evals.read_eval_prompts(out)
    assert [p.to_record() for p in back] == [p.to_record() for p in pf.prompts]
    assert evals.sha256_text(evals.prompts_jsonl(back)) == pf.sha256


def test_prompts_from_mix_records():
    recs = [
        ({"instruction": "Write X", "input": "ctx", "output": "```asm\nRTS\n```", "domain": "dma_hdma"}, "gold"),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Q?"},
                       {"role": "assistant", "content": "A."}]}, "chat"),
        ({"instruction": "", "output": "x"}, "gold"),  # unusable: no instruction
        ({"instruction": "no output"}, "oos"),
    ]
    assert evals.prompts_from_records(recs) == [
        {"id": "gold-1", "category": "dma_hdma", "dataset": "gold", "instruction": "Write X", "input": "ctx",
         "reference": "```asm\nRTS\n```"},
        {"id": "chat-2", "category": "chat", "dataset": "chat", "instruction": "Q?", "reference": "A."},
        {"id": "oos-4", "category": "oos", "dataset": "oos", "instruction": "no output"},
    ]


# --- pass@k ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 0.4),  # c / n
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    (4, 0, 2, 0.0),
    (3, 2, 2, 1.0),  # fewer failures than k: some draw always passes
    (1, 1, 1, 1.0),
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert evals.pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 0), (2, 1, 3)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        evals.pass_at_k(n, c, k)


# --- summaries -----------------------------------------------------------------------------------


def _row(idx: int, sample: int, verdict: str, match: bool | None = None, category: str = "", truncated=False) -> dict:
    return {"prompt_idx": idx, "sample": sample, "verdict": verdict, "match": match, "category": category,
            "truncated": truncated}


def test_summary_rates_pass_at_k_and_match():
    rows = [
        _row(0, 0, "assembles", True, "dma"), _row(0, 1, "assembles"), _row(0, 2, "syntax_error"),
        _row(1, 0, "syntax_error", False, "dma", truncated=True), _row(1, 1, "syntax_error"), _row(1, 2, "empty"),
        _row(2, 0, "unresolved_label", None, "ppu"), _row(2, 1, "assembles"), _row(2, 2, "assembles"),
        _row(3, 0, "empty", False, ""), _row(3, 1, "empty"), _row(3, 2, "empty"),
    ]
    s = evals.summarise(rows, samples=2)
    assert s.prompts == 4 and s.samples == 2
    assert s.assemble_rate == 0.25
    assert s.counts == {"assembles": 1, "syntax_error": 1, "unresolved_label": 1, "empty": 1}
    assert s.rates == {"assembles": 0.25, "syntax_error": 0.25, "unresolved_label": 0.25, "empty": 0.25}
    # pass@1 per prompt: 1/2, 0, 1, 0 -> 0.375; pass@2: 1, 0, 1, 0 -> 0.5
    assert s.pass_at_1 == pytest.approx(0.375) and s.pass_at_k == pytest.approx(0.5)
    assert (s.with_reference, s.matched, s.match_rate) == (3, 1, pytest.approx(1 / 3))
    assert s.truncated == 1
    assert s.by_category == {"dma": {"prompts": 2, "assemble_rate": 0.5}, "ppu": {"prompts": 1, "assemble_rate": 0.0}}
    assert evals.Summary.from_dict(s.to_dict()) == s


def test_summary_without_samples_or_references():
    s = evals.summarise([_row(0, 0, "assembles"), _row(1, 0, "crash")], samples=0)
    assert s.pass_at_1 is None and s.pass_at_k is None and s.match_rate is None
    assert s.rates == {"assembles": 0.5, "crash": 0.5}
    assert evals.summarise([], samples=3).assemble_rate is None


def test_eval_loss_at_a_checkpoint_step():
    metrics = [{"event": "train", "step": 2, "loss": 3.0},
               {"event": "eval", "step": 2, "eval_loss": 2.5, "eval_loss/gold": 2.0, "eval_loss/oos": 3.0},
               {"event": "eval", "step": 4, "eval_loss": 2.0, "eval_loss/gold": 1.5, "eval_loss/oos": 2.5}]
    assert evals.eval_loss_at(metrics, 4) == {"eval_loss": 2.0, "at_step": 4, "by_dataset": {"gold": 1.5, "oos": 2.5}}
    assert evals.eval_loss_at(metrics, 3)["at_step"] == 2  # no eval at 3: the last one before it
    assert evals.eval_loss_at(metrics, 1)["eval_loss"] is None
    assert evals.eval_loss_at(metrics, 0) == {"eval_loss": None, "by_dataset": {}}  # the base model


# --- ranking -------------------------------------------------------------------------------------


def _lb(run: str, ckpt: str, step: int, asm, match=None, passk=None, loss=None) -> leaderboard.LeaderboardRow:
    return leaderboard.LeaderboardRow(run=run, checkpoint=ckpt, step=step, assemble_rate=asm, match_rate=match,
                                pass_at_1=passk, pass_at_k=passk, eval_loss=loss)


def test_rank_best_first_missing_last_with_tie_breaks():
    rows = [_lb("r", "base", 0, 0.1), _lb("r", "checkpoint-2", 2, 0.5, 0.1, loss=2.0),
            _lb("r", "checkpoint-4", 4, 0.5, 0.3, loss=1.0), _lb("q", "checkpoint-9", 9, None, loss=0.5)]
    ranked = leaderboard.rank(rows)
    assert [(r.rank, r.checkpoint) for r in ranked] == [
        (1, "checkpoint-4"), (2, "checkpoint-2"), (3, "base"), (4, "checkpoint-9")]
    by_loss = leaderboard.rank(rows, "eval_loss")  # lower is better; the base has none
    assert [r.checkpoint for r in by_loss] == ["checkpoint-9", "checkpoint-4", "checkpoint-2", "base"]
    assert [r.checkpoint for r in leaderboard.rank(rows, "step")] == ["checkpoint-9", "checkpoint-4", "checkpoint-2", "base"]
    with pytest.raises(ZeldaError, match="unknown sort column 'speed'"):
        leaderboard.rank(rows, "speed")


# --- which checkpoints an eval covers --------------------------------------------------------------


def _checkpoint(run_dir: Path, step: int) -> None:
    d = run_dir / runs.CHECKPOINTS / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text("{}")
    (d / runs.CHECKPOINT_DONE).write_text("{}")


def test_eval_checkpoints_base_checkpoints_and_a_distinct_final(tmp_path: Path):
    run_dir = tmp_path / "run"
    _checkpoint(run_dir, 2)
    _checkpoint(run_dir, 4)
    (run_dir / runs.CHECKPOINTS / "checkpoint-6").mkdir()  # cut off mid-save: not complete
    assert evals.eval_checkpoints(run_dir) == [("base", 0), ("checkpoint-2", 2), ("checkpoint-4", 4)]
    (run_dir / runs.ADAPTERS).mkdir()
    (run_dir / runs.ADAPTERS / "adapter_config.json").write_text("{}")
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=4))
    assert evals.eval_checkpoints(run_dir)[-1] == ("checkpoint-4", 4)  # final = checkpoint-4: not twice
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=5))
    assert evals.eval_checkpoints(run_dir)[-1] == ("final", 5)
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=5, best_checkpoint="checkpoints/checkpoint-2"))
    assert evals.eval_checkpoints(run_dir)[-1] == ("checkpoint-4", 4)  # early stopping reloaded checkpoint-2


def test_answers_file_is_reused_only_for_the_same_request(tmp_path: Path):
    adapter = tmp_path / "ckpt"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"x" * 10)
    request = evals.generation_request("m", adapter, "abc", 2, 16, 0, 0.8, 0.95)
    path = tmp_path / "evals" / "s" / "checkpoint-2.jsonl"
    answers = [{"prompt_idx": 0, "sample": s, "answer": "RTS"} for s in range(3)]
    evals.write_answers(path, {**request, "expected": 3}, answers)
    assert evals.answers_complete(path, request)
    assert evals.read_answers(path) == ({**request, "expected": 3}, answers)
    assert not evals.answers_complete(path, {**request, "samples": 3})
    assert not evals.answers_complete(path, evals.generation_request("m", None, "abc", 2, 16, 0, 0.8, 0.95))
    evals.write_answers(path, {**request, "expected": 4}, answers)  # fewer lines than promised
    assert not evals.answers_complete(path, request)
    path.write_text('{"header": {}}\n{"prompt_idx": 0, "sample": 0}\n')
    with pytest.raises(ZeldaError, match=r"checkpoint-2.jsonl:2: an answer line needs"):
        evals.read_answers(path)


# --- storage ---------------------------------------------------------------------------------------


def _stored(run: str, ckpt: str, verdicts: list[str]) -> tuple[dict, list[dict]]:
    rows = [{"run": run, "checkpoint": ckpt, "prompt_set": "s", "prompt_idx": i, "sample": 0, "category": "c",
             "prompt": f"p{i}", "reference": None, "answer": "RTS", "verdict": v, "checker": "precheck",
             "errors": [] if v == "assembles" else ["snippet:1: error: bad"], "line": None if v == "assembles" else 1,
             "code": "RTS", "match": None, "truncated": False} for i, v in enumerate(verdicts)]
    summary = {"run": run, "checkpoint": ckpt, "prompt_set": "s", "run_dir": "/r", "step": 2, "model": "m",
               "prompts_sha256": "abc", "samples": 0, "header": {"created": time.time()},
               "summary": evals.summarise(rows, 0).to_dict()}
    return summary, rows


def test_store_replaces_one_checkpoint_at_a_time(tmp_path: Path):
    store = Store(tmp_path / "state.sqlite")
    try:
        store.eval_replace(*_stored("r", "checkpoint-2", ["assembles", "syntax_error", "empty"]))
        store.eval_replace(*_stored("r", "base", ["syntax_error"]))
        store.eval_replace(*_stored("r", "checkpoint-2", ["assembles", "assembles"]))  # a re-score replaces
        rows = store.eval_rows("r", "checkpoint-2", "s")
        assert [(r["prompt_idx"], r["verdict"], r["errors"], r["match"], r["truncated"]) for r in rows] == [
            (0, "assembles", [], None, False), (1, "assembles", [], None, False)]
        assert store.eval_rows("r", "base", "s")[0]["errors"] == ["snippet:1: error: bad"]
        assert store.eval_rows("r", "checkpoint-2", "s", prompt_idx=1)[0]["prompt"] == "p1"
        assert [s["checkpoint"] for s in store.eval_summaries("s")] == ["base", "checkpoint-2"]
        assert store.eval_summary("r", "checkpoint-2", "s")["summary"]["assemble_rate"] == 1.0
        assert store.eval_prompt_sets()[0] | {"last": 0} == {"prompt_set": "s", "checkpoints": 2, "last": 0}
        with pytest.raises(sqlite3.IntegrityError):  # a broken batch leaves the stored results as they were
            store.eval_replace(_stored("r", "checkpoint-2", [])[0], [{"run": "r"}] + _stored("r", "x", ["empty"])[1])
    finally:
        store.close()
    reopened = Store(tmp_path / "state.sqlite")
    try:
        assert len(reopened.eval_rows("r", "checkpoint-2", "s")) == 2
    finally:
        reopened.close()
