"""Leaderboard screen (not built yet: the Asar eval issue fills it)."""

from .planned import PlannedScreen


class LeaderboardScreen(PlannedScreen):
    SCREEN_TITLE = "Leaderboard"
    PLAN = """\
# Leaderboard — not built yet

This screen will hold **every checkpoint of every run, ranked**:

- assembles-with-Asar rate, per error class, pass@k and per-dataset eval loss
- the base model as a reference row
- a sample viewer: prompt, answer and Asar's verdict with the failing line highlighted
"""
