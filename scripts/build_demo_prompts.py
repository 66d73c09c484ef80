"""Regenerate zelda_tui/core/eval_data/demo_prompts.jsonl, the shipped held-out prompt set.

    .venv/bin/python scripts/build_demo_prompts.py

Deterministic: the same file every time (tests/demo/test_prompts.py checks it is up to date).
"""

from __future__ import annotations

from zelda_tui.core import atomic, evals
from zelda_tui.demo.prompts import demo_prompts_text

if __name__ == "__main__":
    atomic.write_text(evals.SHIPPED_PROMPTS, demo_prompts_text())
    print(f"wrote {evals.SHIPPED_PROMPTS}")
