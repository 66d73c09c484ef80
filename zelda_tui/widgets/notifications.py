"""`N`: every message of this session (toasts vanish after seconds), with time, severity and full text."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "information": "green"}


@dataclass(frozen=True)
class Note:
    """One notification as the user saw it (plain text, never markup)."""

    at: float
    severity: str
    title: str
    message: str


def notes_table(notes: list[Note]) -> Table | Text:
    if not notes:
        return Text("No messages yet.", style="dim")
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
    table.add_column("time", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("message", ratio=1)
    for note in reversed(notes):  # newest first
        text = Text(f"{note.title}: " if note.title else "", style="bold") + Text(note.message)
        table.add_row(time.strftime("%H:%M:%S", time.localtime(note.at)),
                      Text(note.severity, style=SEVERITY_STYLES.get(note.severity, "")), text)
    return table


class NotificationsScreen(ModalScreen):
    DEFAULT_CSS = """
    NotificationsScreen { align: center middle; }
    NotificationsScreen > VerticalScroll { width: 100%; height: 1fr; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,N", "dismiss", "Close", id="notes.close", tooltip="Back")]

    def __init__(self, notes: list[Note]) -> None:
        super().__init__()
        self.notes = list(notes)

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"messages · {len(self.notes)} this session, newest first"
            yield Static(notes_table(self.notes), id="notes-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
