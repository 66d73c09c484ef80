"""`?`: every key of the screen with its binding id (the name `[keys]` in config.toml remaps)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


def keys_table(bindings: list[tuple[str, str, str]]) -> Table:
    """(key shown, binding id, what it does) rows as a table that wraps at 80 columns."""
    table = Table(expand=True, box=None, pad_edge=False, header_style="bold")
    table.add_column("key", no_wrap=True)
    table.add_column("id  ([keys] in config.toml)", no_wrap=True, style="cyan")
    table.add_column("does", ratio=1)
    for key, binding_id, does in bindings:
        table.add_row(Text(key), Text(binding_id), Text(does))
    return table


class KeysScreen(ModalScreen):
    """The keys of the screen below (its own, then the app's), scrollable; `?` or Escape closes."""

    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > VerticalScroll { width: 100%; max-width: 110; height: 1fr; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="keys.close", tooltip="Back")]

    def __init__(self, title: str, bindings: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self._title, self.bindings = title, bindings

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"keys · {self._title}"
            scroll.border_subtitle = 'remap: [keys] "ID" = "f5" in config.toml'
            yield Static(keys_table(self.bindings), id="keys-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
