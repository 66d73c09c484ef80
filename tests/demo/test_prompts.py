"""The shipped held-out prompt set is what the demo generator makes, and none of it was trained on."""

from __future__ import annotations

from zelda_tui.core import evals
from zelda_tui.demo import prompts
from zelda_tui.demo.workspace import DEFAULT_SEED


def test_shipped_demo_prompts_are_up_to_date_and_held_out():
    """Regenerate with scripts/build_demo_prompts.py when the generator changes."""
    trained = prompts.demo_dataset_prompts(DEFAULT_SEED)
    assert evals.SHIPPED_PROMPTS.read_text(encoding="utf-8") == prompts.demo_prompts_text(trained)
    pf = evals.parse_prompts(evals.SHIPPED_PROMPTS)
    assert not pf.problems and len(pf.prompts) == prompts.HELDOUT_COUNT
    assert all(p.reference and "```asm" in p.reference and p.category for p in pf.prompts)
    assert len({(p.instruction, p.input) for p in pf.prompts}) == len(pf.prompts)
    assert not {(p.instruction, p.input) for p in pf.prompts} & trained
