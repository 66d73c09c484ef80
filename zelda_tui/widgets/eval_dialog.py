"""Ask what to evaluate: the run, the checkpoints, the prompt file and how many samples."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


@dataclass
class EvalChoice:
    run: str
    checkpoint: str
    prompts: str
    samples: int
    max_new_tokens: int


class EvalDialog(ModalScreen[EvalChoice | None]):
    """Dismisses with an EvalChoice, or None when cancelled. Bad numbers keep it open."""

    DEFAULT_CSS = """
    EvalDialog { align: center middle; }
    EvalDialog > Vertical { width: 72; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    EvalDialog Horizontal.field { height: 1; margin-top: 1; }
    EvalDialog Label { width: 16; }
    EvalDialog Input, EvalDialog Select { width: 1fr; }
    EvalDialog #eval-error { color: $error; height: auto; }
    EvalDialog Horizontal.buttons { height: auto; align-horizontal: right; margin-top: 1; }
    EvalDialog Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="eval.cancel", tooltip="Evaluate nothing")]

    def __init__(self, runs: list[str], run: str | None, prompts: str, samples: int = 0, max_new_tokens: int = 256) -> None:
        super().__init__()
        self.runs, self.run, self.prompts = runs, run if run in runs else (runs[0] if runs else None), prompts
        self.samples, self.max_new_tokens = samples, max_new_tokens

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Evaluate checkpoints[/b] — generate, assemble with Asar, score")
            with Horizontal(classes="field"):
                yield Label("run")
                yield Select([(r, r) for r in self.runs], value=self.run or Select.BLANK, allow_blank=False,
                             id="eval-run", compact=True)
            with Horizontal(classes="field"):
                yield Label("checkpoints")
                yield Input("all", id="eval-checkpoint", compact=True, tooltip="all, base, final, N or a comma list")
            with Horizontal(classes="field"):
                yield Label("prompt file")
                yield Input(self.prompts, id="eval-prompts", compact=True, tooltip="JSONL: instruction, input?, reference?, category?")
            with Horizontal(classes="field"):
                yield Label("samples (k)")
                yield Input(str(self.samples), id="eval-samples", type="integer", compact=True,
                            tooltip="sampled answers per prompt for pass@k, besides the greedy one")
            with Horizontal(classes="field"):
                yield Label("max new tokens")
                yield Input(str(self.max_new_tokens), id="eval-max-tokens", type="integer", compact=True)
            yield Static(id="eval-error")
            with Horizontal(classes="buttons"):
                yield Button("Evaluate", variant="primary", id="eval-go")
                yield Button("Cancel", id="eval-no")

    def on_mount(self) -> None:
        self.query_one("#eval-go", Button).focus()

    @on(Button.Pressed, "#eval-no")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#eval-go")
    @on(Input.Submitted)
    def _go(self) -> None:
        run = self.query_one("#eval-run", Select).value
        error = self.query_one("#eval-error", Static)
        try:
            samples = int(self.query_one("#eval-samples", Input).value or 0)
            tokens = int(self.query_one("#eval-max-tokens", Input).value or 0)
        except ValueError:
            samples, tokens = -1, 0
        if not isinstance(run, str):
            error.update("no run to evaluate (start one on the Runs screen)")
        elif samples < 0 or tokens < 1:
            error.update("samples must be 0 or more and max new tokens at least 1")
        else:
            self.dismiss(EvalChoice(run, self.query_one("#eval-checkpoint", Input).value.strip() or "all",
                                    self.query_one("#eval-prompts", Input).value.strip(), samples, tokens))
