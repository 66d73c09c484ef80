"""The Leaderboard marks each run's best checkpoint by assemble rate and by eval loss (early
stopping's pick where it ran), so a user sees when the two disagree."""

from __future__ import annotations

from zelda_tui.core.leaderboard import BEST_ASSEMBLES, BEST_LOSS, LeaderboardRow, mark_best


def row(run: str, checkpoint: str, assemble: float | None, loss: float | None, base: bool = False) -> LeaderboardRow:
    return LeaderboardRow(run=run, checkpoint=checkpoint, assemble_rate=assemble, eval_loss=loss, is_base=base)


def test_best_by_assembles_and_by_loss_disagree_and_agree():
    rows = [row("a", "base", 0.9, None, base=True), row("a", "checkpoint-2", 0.5, 1.2), row("a", "checkpoint-4", 0.7, 1.4),
            row("b", "checkpoint-2", 0.3, 1.1), row("b", "checkpoint-4", 0.6, 0.9)]
    marks = {r.key: r.best for r in mark_best(rows, {})}
    assert marks[("a", "base")] == ()  # the base model is a reference, never a run's best
    assert marks[("a", "checkpoint-4")] == (BEST_ASSEMBLES,) and marks[("a", "checkpoint-2")] == (BEST_LOSS,)
    assert marks[("b", "checkpoint-4")] == (BEST_ASSEMBLES, BEST_LOSS) and marks[("b", "checkpoint-2")] == ()


def test_early_stoppings_pick_wins_over_the_lowest_loss_seen():
    rows = [row("a", "checkpoint-2", 0.5, 1.0), row("a", "checkpoint-4", 0.7, 0.8), row("a", "checkpoint-6", None, None)]
    assert [r.best for r in mark_best(rows, {"a": "checkpoint-2"})] == [(BEST_LOSS,), (BEST_ASSEMBLES,), ()]
