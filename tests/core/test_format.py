"""core.format: the one place numbers, sizes, times and durations become display text (CLI and TUI)."""

from __future__ import annotations

from datetime import datetime

from zelda_tui.core.format import cut_middle, duration, human_bytes, num, percent, short_time


def test_num_formats_by_spec_and_shows_missing_as_a_dash() -> None:
    assert num(0.123456, ".3f") == "0.123"
    assert num(1234.5, ",.2f") == "1,234.50"
    assert num(80.0, "g", suffix=" GB") == "80 GB"
    assert num(None, ".3f") == "—"
    assert num(None, ".3f", suffix=" GB") == "—"  # no unit after nothing
    assert num(None, ".4f", missing="-") == "-"  # the CLI's plain-ASCII tables


def test_percent_is_a_rate_with_one_decimal() -> None:
    assert percent(0.125) == "12.5%"
    assert percent(0.0) == "0.0%"
    assert percent(None) == "—"
    assert percent(None, missing="-") == "-"


def test_duration_reads_as_hours_minutes_or_seconds() -> None:
    assert duration(3 * 3600 + 5 * 60 + 59) == "3h05m"
    assert duration(600) == "10m00s"
    assert duration(249.9) == "4m09s"
    assert duration(42) == "42s"  # the CLI printed "0m42s" before the two formatters became one
    assert duration(None) == "—"
    assert duration(None, missing="-") == "-"


def test_human_bytes_in_binary_units() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KB"
    assert human_bytes(2 * 1024**3) == "2.0 GB"
    assert human_bytes(3 * 1024**5) == "3072.0 TB"  # TB is the last unit


def test_short_time_to_the_minute_and_none_for_zero() -> None:
    ts = datetime(2024, 5, 6, 7, 8, 9).timestamp()
    assert short_time(ts) == "2024-05-06 07:08"
    assert short_time(0) == "—"


def test_cut_middle_keeps_both_ends_and_a_named_tail() -> None:
    assert cut_middle("short", 10) == "short"
    assert cut_middle("abcdefghij", 5) == "ab…ij"
    assert len(cut_middle("abcdefghij", 5)) == 5
    name = "phase0-lora-very-long-name_20240506-070809"
    cut = cut_middle(name, 24, "_")
    assert len(cut) == 24 and cut.endswith("_20240506-070809") and "…" in cut
