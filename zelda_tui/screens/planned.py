"""Base for the screens whose issues have not landed yet: they say plainly what they will hold."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown

from ..services import Services


class PlannedScreen(Screen):
    CSS_PATH = "planned.tcss"
    SCREEN_TITLE = ""
    PLAN = ""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(classes="planned"):
            yield Markdown(self.PLAN)
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.SCREEN_TITLE
