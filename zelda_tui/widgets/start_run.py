"""Pick what to train: a phase (its mix and training overrides) or a plain mix."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class StartRunDialog(ModalScreen[tuple[str | None, int | None] | None]):
    """Dismisses with (mix, phase) — one of them None — or None when cancelled."""

    DEFAULT_CSS = """
    StartRunDialog { align: center middle; }
    StartRunDialog > Vertical { width: 64; height: auto; max-height: 20; border: thick $accent; background: $surface; padding: 1 2; }
    StartRunDialog OptionList { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="start.cancel", tooltip="Start nothing")]

    def __init__(self, phases: dict[int, str], mixes: list[str]) -> None:
        super().__init__()
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
            yield Static("[b]Start a training run[/b] — runs detached, on this machine")
            yield OptionList(*self.options, id="start-choices")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
