"""Runs screen (not built yet: the trainer and remote-training issues fill it)."""

from .planned import PlannedScreen


class RunsScreen(PlannedScreen):
    SCREEN_TITLE = "Runs"
    PLAN = """\
# Runs — not built yet

This screen will hold **your training runs, local and on rented GPU boxes**:

- the runs list with state, host, step, ETA and spend so far
- a live tail of `train.log` and `metrics.jsonl` (over SSH, surviving disconnects)
- a loss / eval-loss chart, tokens/s and VRAM
- `s` stops a run; fetch adapters; destroy the instance

Build a mix on the Mix screen (key 2) first: runs train on a built mix.
"""
