"""Eval results made without a model: a run directory by the real contract, answer files as
the generator writes them, scored by the real services (Asar or its pre-check) into SQLite.

Used where generation is not under test (services ingestion, the Leaderboard screen); the
trainer tests run the real generator on the tiny model.
"""

from __future__ import annotations

from pathlib import Path

from zelda_tui.core import atomic, evals, runs
from zelda_tui.core.train_config import DataSection, ModelSection, RunConfig, TrainSection

FENCE = "```"
GOOD_LOOP = f"Here is the routine:\n\n{FENCE}asm\nClearLoop:\n    LDA #$00\n    LDX #$0F\n.loop\n    STA $0200,X\n    DEX\n    BPL .loop\n    RTS\n{FENCE}\n"
GOOD_WORD = f"{FENCE}asm\n    REP #$20\n    LDA #$1234\n    STA $7E0010\n    SEP #$20\n    RTL\n{FENCE}"
BAD_SYNTAX = f"{FENCE}asm\n    LDA #$00\n    FOOBAR $12\n    RTS\n{FENCE}"  # line 2 fails
UNRESOLVED = f"{FENCE}asm\n    JSL Sprite_SpawnDynamically\n    RTL\n{FENCE}"  # a label the hack would define
EMPTY = ""

PROMPTS = [
    {"instruction": "Write a routine that clears 16 bytes at $0200.", "reference": GOOD_LOOP, "category": "memory_map"},
    {"instruction": "Store $1234 to $7E0010 with a 16-bit accumulator.", "reference": GOOD_WORD, "category": "memory_map"},
    {"instruction": "Spawn a sprite.", "input": "Use the vanilla spawner.", "reference": UNRESOLVED, "category": "sprite_logic"},
    {"instruction": "Explain what REP #$20 does.", "category": "asar_syntax"},
]
# checkpoint -> one greedy answer per prompt (checkpoint-4 is best, base worst)
ANSWERS = {
    "base": [EMPTY, BAD_SYNTAX, BAD_SYNTAX, EMPTY],
    "checkpoint-2": [GOOD_LOOP, BAD_SYNTAX, UNRESOLVED, BAD_SYNTAX],
    "checkpoint-4": [GOOD_LOOP, GOOD_WORD, UNRESOLVED, GOOD_WORD],
}
# sampled answers (pass@k) of each prompt, the same for every checkpoint
SAMPLES = [[GOOD_LOOP, BAD_SYNTAX], [BAD_SYNTAX, BAD_SYNTAX], [GOOD_WORD, EMPTY], [EMPTY, EMPTY]]
MODEL = "local/tiny-deepseek"


def make_run(ws: Path, name: str, steps: tuple[int, ...] = (2, 4), model: str = MODEL,
             losses: dict[int, float] | None = None) -> Path:
    """A finished run: run.toml, eval losses per dataset at each checkpoint step (default 3 / step;
    gold 1 below, oos 1 above), complete checkpoints."""
    run_dir = ws / "runs" / name
    run_dir.mkdir(parents=True)
    RunConfig(name=name, created="2026-01-01T00:00:00Z", model=ModelSection(base=model, name="tiny"),
              train=TrainSection(max_steps=max(steps)), data=DataSection(mix="small", phase=0)).save(run_dir)
    for step in steps:
        loss = (losses or {}).get(step, 3.0 / step)
        runs.append_metric(run_dir, "eval", step=step, eval_loss=loss, **{"eval_loss/gold": loss - 0.125,
                                                                            "eval_loss/oos": loss + 0.125})
        ckpt = run_dir / runs.CHECKPOINTS / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "adapter_config.json").write_text("{}")
        (ckpt / "adapter_model.safetensors").write_bytes(b"weights %d" % step)
        (ckpt / runs.CHECKPOINT_DONE).write_text("{}")
    runs.write_status(run_dir, runs.RunStatus(state="completed", step=max(steps), max_steps=max(steps)))
    return run_dir


def write_answers(run_dir: Path, prompt_set: str, answers: dict[str, list[str]], samples: list[list[str]] | None = None,
                  prompts: list[dict] = PROMPTS) -> list[evals.Prompt]:
    """prompts.jsonl and one answers file per checkpoint, exactly as an eval run leaves them."""
    parsed = [evals.prompt_from_record(p, i, i + 1, "seed") for i, p in enumerate(prompts)]
    text = evals.prompts_jsonl(parsed)
    atomic.write_text(evals.eval_dir(run_dir, prompt_set) / evals.PROMPTS_FILE, text)
    k = len(samples[0]) if samples else 0
    for ckpt, greedy in answers.items():
        request = evals.generation_request(MODEL, evals.checkpoint_dir(run_dir, ckpt), evals.sha256_text(text), k,
                                           64, 0, 0.8, 0.95)
        rows = []
        for p, answer in zip(parsed, greedy):
            rows.append({"prompt_idx": p.idx, "sample": 0, "answer": answer, "tokens": 10, "truncated": False})
            for s, sampled in enumerate((samples or [[]] * len(parsed))[p.idx], 1):
                rows.append({"prompt_idx": p.idx, "sample": s, "answer": sampled, "tokens": 10, "truncated": False})
        step = 0 if ckpt == evals.BASE else int(ckpt.rsplit("-", 1)[1])
        header = {"run": run_dir.name, "prompt_set": prompt_set, "checkpoint": ckpt, "step": step, **request,
                  "expected": len(rows), "device": "cpu", "created": 1767225600.0 + step, "elapsed_s": 1.0}
        evals.write_answers(evals.answers_path(run_dir, prompt_set, ckpt), header, rows)
    return parsed


def seed_results(services, run_dir: Path, prompt_set: str = "demo_prompts",
                 answers: dict[str, list[str]] = ANSWERS, samples: list[list[str]] | None = SAMPLES) -> None:
    """Answers files + the real validation and scoring into the workspace's SQLite."""
    write_answers(run_dir, prompt_set, answers, samples)
    for ckpt in answers:
        services.evals.ingest(run_dir, prompt_set, ckpt)
