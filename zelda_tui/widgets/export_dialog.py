"""Ask how to export a run's checkpoint: which checkpoint, which GGUF types, which pre-tokenizer.

Prefilled from the screen's selection; Cancel has the focus (an export takes minutes and, for a
remote run, a GPU box's time), so a reflexive Enter or Escape starts nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True)
class ExportChoice:
    run: str
    checkpoint: str  # N, checkpoint-N, best or final, as the service takes it
    gguf: list[str] = field(default_factory=list)  # [] = the merged model only
    gguf_pre: str = ""


def default_checkpoint(scored: bool, completed: bool, latest: str | None) -> str | None:
    """What a run's export starts from: its best-scored checkpoint when it has eval scores, else its
    final adapters when it completed, else its latest checkpoint (None: nothing to export yet)."""
    if scored:
        return "best"
    if completed:
        return "final"
    return latest


def parse_types(text: str, known: Sequence[str]) -> tuple[list[str], str | None]:
    """The GGUF types typed ("q8_0, q4_k_m" or space separated) and the first unknown one, if any."""
    types = list(dict.fromkeys(t for t in re.split(r"[\s,]+", text.strip().lower()) if t))
    unknown = next((t for t in types if t not in known), None)
    return types, unknown


class ExportDialog(ModalScreen[ExportChoice | None]):
    """Dismisses with an ExportChoice, or None when cancelled. A bad field keeps it open with a reason."""

    AUTO_FOCUS = "#export-no"
    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical { width: 72; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    ExportDialog Horizontal.field { height: 1; margin-top: 1; }
    ExportDialog Label { width: 16; }
    ExportDialog Input { width: 1fr; }
    ExportDialog #export-error { color: $error; height: auto; }
    ExportDialog Horizontal.buttons { height: auto; align-horizontal: right; margin-top: 1; }
    ExportDialog Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel", tooltip="Export nothing")]

    def __init__(self, run: str, checkpoint: str, known_types: Sequence[str]) -> None:
        super().__init__()
        self.run, self.checkpoint, self.known = run, checkpoint, list(known_types)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]Export {escape(self.run)}[/b] — the checkpoint merged into its bf16 base, "
                         "GGUF files if asked; each verified by running it")
            with Horizontal(classes="field"):
                yield Label("checkpoint")
                yield Input(self.checkpoint, id="export-checkpoint", compact=True, tooltip="N, checkpoint-N, best or final")
            with Horizontal(classes="field"):
                yield Label("gguf types")
                yield Input("", id="export-gguf", compact=True, placeholder="empty: the merged model only",
                            tooltip=f"comma list of {', '.join(self.known)} (the 16-bit file is always written)")
            with Horizontal(classes="field"):
                yield Label("pre-tokenizer")
                yield Input("", id="export-gguf-pre", compact=True, placeholder="optional",
                            tooltip="llama.cpp pre-tokenizer name, for a tokenizer its converter does not recognise")
            yield Static(id="export-error")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="export-go")
                yield Button("Cancel", id="export-no")

    @on(Button.Pressed, "#export-no")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#export-go")
    @on(Input.Submitted)
    def _go(self) -> None:
        error = self.query_one("#export-error", Static)
        checkpoint = self.query_one("#export-checkpoint", Input).value.strip()
        types, unknown = parse_types(self.query_one("#export-gguf", Input).value, self.known)
        if not checkpoint:
            error.update("which checkpoint: N, checkpoint-N, best or final")
        elif checkpoint.lower() == "base":
            error.update("the base model has no adapter to merge: pick a checkpoint of the run")
        elif unknown:
            error.update(f"unknown GGUF type '{escape(unknown)}' (known: {', '.join(self.known)})")
        else:
            self.dismiss(ExportChoice(self.run, checkpoint, types, self.query_one("#export-gguf-pre", Input).value.strip()))
