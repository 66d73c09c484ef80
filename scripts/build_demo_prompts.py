"""Regenerate zelda_tui/core/eval_data/demo_prompts.jsonl, the shipped held-out prompt set.

    .venv/bin/python scripts/build_demo_prompts.py

Deterministic: the same file every time (tests/core/test_evals.py checks it is up to date).
"""

from __future__ import annotations

from zelda_tui.core import atomic, evals

if __name__ == "__main__":
    atomic.write_text(evals.SHIPPED_PROMPTS, evals.demo_prompts_text())
    print(f"wrote {evals.SHIPPED_PROMPTS}")
