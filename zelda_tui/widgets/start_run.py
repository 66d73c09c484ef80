"""Pick what to train — a phase (its mix and training overrides) or a plain mix — and where:
this machine, or a GPU box over SSH (an ssh alias or user@host:port)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


Choice = tuple[str | None, int | None, str | None]


class StartRunDialog(ModalScreen[Choice | None]):
    """Dismisses with (mix, phase, host) — mix or phase None, host None for this machine — or None."""

    DEFAULT_CSS = """
    StartRunDialog { align: center middle; }
    StartRunDialog > Vertical { width: 72; height: auto; max-height: 24; border: thick $accent; background: $surface; padding: 1 2; }
    StartRunDialog Input { margin-bottom: 1; }
    StartRunDialog OptionList { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="start.cancel", tooltip="Start nothing")]

    def __init__(self, phases: dict[int, str], mixes: list[str], hosts: list[str] | None = None) -> None:
        super().__init__()
        self.hosts = hosts or []
        self.choices: list[tuple[str | None, int | None]] = []
        self.options: list[Option] = []
        for phase, mix in sorted(phases.items()):
            self.choices.append((None, phase))
            self.options.append(Option(f"phase {phase}  ({mix})"))
        for mix in mixes:
            self.choices.append((mix, None))
            self.options.append(Option(f"mix {mix}"))

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Start a training run[/b] — it runs detached; empty host = this machine"
                         + (f"\nknown hosts: {', '.join(self.hosts)}" if self.hosts else ""))
            yield Input(placeholder="host: ssh alias or user@host:port (empty: this machine)", id="start-host")
            yield OptionList(*self.options, id="start-choices")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_input_submitted(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        mix, phase = self.choices[event.option_index]
        host = self.query_one("#start-host", Input).value.strip() or None
        self.dismiss((mix, phase, host))

    def action_cancel(self) -> None:
        self.dismiss(None)
