"""`--json` keys are a contract (scripts and cron jobs read them): the offer, launch and instance
objects keep exactly their keys, through the real CLI against the local replay of Vast's API."""

from __future__ import annotations

import json
from pathlib import Path

from tests.backends.replay_server import ReplayServer

from .test_launch_cli import NEW_ID, OFFER, cli, serve
from .test_offers_cli import workspace

COLUMNS = ["key", "provider", "instance_id", "offer", "gpu_name", "num_gpus", "dph_total", "started", "ended", "state",
           "ssh_host", "ssh_port"]
OFFER_KEYS = ["key", "provider", "id", "gpu_name", "num_gpus", "gpu_ram", "dph_total", "region", "reliability",
              "available", "price_date", "price_source", "fit", "vram_gb", "hours", "dollars", "tokens_per_s_source"]


def run_json(cfg: Path, *args: str):
    res = cli(cfg, *args, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_offer_launch_and_instance_json_keep_their_keys(small_ws: Path):
    with ReplayServer() as server:
        serve(server)
        cfg = workspace(small_ws, f"{server.url}/api/v0")
        offers = run_json(cfg, "offers", "search", "--provider", "vast")
        assert list(offers) == ["offers", "warnings"] and list(offers["offers"][0]) == OFFER_KEYS

        plan = run_json(cfg, "offers", "launch", OFFER, "--dry-run")
        assert list(plan) == ["offer", "budget", "over_budget", "request"] and list(plan["offer"]) == OFFER_KEYS
        assert list(plan["budget"]) == ["max_total_usd", "max_hourly_usd", "spent_usd", "left_usd", "max_runtime_hours"]

        launched = run_json(cfg, "offers", "launch", OFFER, "--yes")
        assert list(launched) == COLUMNS and launched["state"] == "starting"

        offline = run_json(cfg, "instances", "list", "--no-refresh")
        assert list(offline) == ["instances", "budget"] and list(offline["instances"][0]) == COLUMNS + ["hours", "spent_usd"]
        live = run_json(cfg, "instances", "list")["instances"][0]
        assert list(live) == COLUMNS + ["ready", "hours", "spent_usd"] and live["ready"] is False

        gone = run_json(cfg, "instances", "destroy", NEW_ID, "--yes")
        assert list(gone) == COLUMNS + ["spent_usd"] and gone["state"] == "destroyed"
        assert run_json(cfg, "instances", "enforce", "--dry-run") == []


RUN_KEYS = ["name", "run_dir", "host", "mix", "phase", "state", "pid", "step", "max_steps", "loss", "eval_loss",
            "tokens_per_s", "vram_peak_gb", "eta_s", "heartbeat", "finished", "last_checkpoint", "best_checkpoint",
            "message", "remote_dir", "synced_at", "instance", "spent_usd", "home_checkpoint", "evals"]


def test_run_json_keeps_its_keys(small_ws: Path):
    """`train list` / `train status` of a finished run found on disk (not in state.sqlite)."""
    from zelda_tui.core import runs
    from zelda_tui.core.train_config import RunConfig

    run_dir = small_ws.parent / "runs" / "tiny_20260101T000000Z"
    run_dir.mkdir(parents=True)
    cfg = RunConfig(name=run_dir.name)
    cfg.data.mix = "small"
    cfg.save(run_dir)
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=3, max_steps=3, finished=1.0e9))
    runs.append_metric(run_dir, "train", step=3, loss=1.25, tokens_per_s=900.0)
    listed = run_json(small_ws, "train", "list")
    assert [list(r) for r in listed] == [RUN_KEYS]
    assert listed[0]["run_dir"] == str(run_dir) and listed[0]["state"] == "completed" and listed[0]["loss"] == 1.25
    assert listed[0]["host"] == "local" and listed[0]["remote_dir"] is None and listed[0]["message"] == ""
    status = run_json(small_ws, "train", "status", run_dir.name)
    assert list(status) == RUN_KEYS and status["state"] == "completed" and status["step"] == 3


def test_estimate_json_keeps_its_keys(small_ws: Path):
    from .test_estimate_cli import estimate

    est = estimate(small_ws, "--gpu", "A100", "--price", "2", "--mix", "small")
    assert list(est) == ["model", "gpu", "gpus", "mix", "phase", "train_tokens", "epochs", "seq_len", "micro_batch",
                         "vram_gb", "verdict", "vram_breakdown_gb", "tokens_per_s_per_gpu", "tokens_per_s_source",
                         "hours", "dollars", "gpu_note"]
    assert est["gpu_note"].startswith("--gpu 'A100' matches") and isinstance(est["vram_breakdown_gb"], dict)


LEADERBOARD_ROW_KEYS = ["run", "checkpoint", "step", "is_base", "model", "prompt_set", "prompts", "samples",
                        "assemble_rate", "rates", "counts", "pass_at_1", "pass_at_k", "match_rate", "matched",
                        "with_reference", "truncated", "by_category", "eval_loss", "eval_loss_by_dataset",
                        "prompts_changed", "scored_at", "best", "rank", "exported"]
SUMMARY_KEYS = ["prompts", "samples", "assemble_rate", "rates", "counts", "pass_at_1", "pass_at_k", "with_reference",
                "matched", "match_rate", "truncated", "by_category"]
SAMPLE_KEYS = ["run", "checkpoint", "prompt_set", "prompt_idx", "sample", "category", "prompt", "reference", "answer",
               "verdict", "checker", "errors", "line", "code", "match", "truncated"]


def test_eval_and_leaderboard_json_keep_their_keys(small_services, small_ws: Path):
    """`leaderboard`, `eval show`, `eval run` over answers scored by the real services (tests/evals_seed.py)."""
    from tests.evals_seed import PROMPTS, make_run, seed_results

    run_dir = make_run(small_ws.parent, "tiny_20260101T000000Z")
    seed_results(small_services, run_dir)
    board = run_json(small_ws, "leaderboard")
    assert list(board) == ["prompt_set", "prompt_sets", "sort", "rows"]
    assert board["prompt_set"] == "demo_prompts" and board["prompt_sets"] == ["demo_prompts"] and board["sort"] == "assemble"
    assert [list(r) for r in board["rows"]] == [LEADERBOARD_ROW_KEYS] * 3
    top, base = board["rows"][0], board["rows"][2]
    assert (top["checkpoint"], top["rank"], top["best"], top["is_base"]) == ("checkpoint-4", 1, ["assembles", "eval_loss"], False)
    assert (base["checkpoint"], base["rank"], base["best"], base["is_base"]) == ("base", 3, [], True)

    shown = run_json(small_ws, "eval", "show", "--run", run_dir.name, "--checkpoint", "checkpoint-2", "--prompt", "1")
    assert [list(r) for r in shown] == [SAMPLE_KEYS] * 3 and shown[0]["errors"] and shown[0]["match"] is False

    prompts = small_ws.parent / "demo_prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    report = run_json(small_ws, "eval", "run", "--run", run_dir.name, "--prompts", str(prompts), "--samples", "2",
                      "--max-new-tokens", "64")
    assert list(report) == ["run", "run_dir", "prompt_set", "prompts", "problems", "checkpoints"]
    assert [list(c) for c in report["checkpoints"]] == [["checkpoint", "step", "state", "message", "summary"]] * 3
    assert [list(c["summary"]) for c in report["checkpoints"]] == [SUMMARY_KEYS] * 3
    assert report["checkpoints"][2]["summary"]["assemble_rate"] == 0.75 and report["checkpoints"][2]["state"] == "reused"


def test_registry_index_json_keeps_its_keys(small_ws: Path):
    index = run_json(small_ws, "registry", "index")
    assert list(index) == ["export", "datasets"] and index["export"] == str(small_ws.parent / "datasets_registry.json")
    assert [list(d) for d in index["datasets"]] == [
        ["name", "path", "records", "bytes", "sha256", "mtime", "tags", "indexed_at"]] * 3
    assert index["datasets"][0]["name"] == "alpha" and index["datasets"][0]["tags"] == ["a"]
