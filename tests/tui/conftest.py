"""Fixtures for Pilot tests: apps built by the same factory the CLI uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from zelda_tui.app import ZeldaApp
from zelda_tui.services import build_services


@pytest.fixture
def app_for():
    """`app_for(config_path)` -> a ZeldaApp over real services; services closed after the test."""
    made = []

    def make(config_path: Path) -> ZeldaApp:
        services = build_services(config_path)
        made.append(services)
        return ZeldaApp(services)

    yield make
    for s in made:
        s.close()
