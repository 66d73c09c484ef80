"""The sample viewer and the side-by-side compare, opened from the Leaderboard.

Viewer: one checkpoint's answers, prompt by prompt: the prompt, Asar's verdict and error lines,
and the code Asar saw with line numbers and the failing line highlighted (`a` shows the whole
answer, then the reference). Compare: two checkpoints on the same prompt, side by side.

Both read the stored results (`services.evals.samples`) on a worker thread and post one message.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from rich.text import Text

from ..core.leaderboard import LeaderboardRow
from ..services import Services
from ..services.views import SampleRow
from .app_api import report_from_thread

VERDICT_STYLES = {
    "assembles": "bold green", "syntax_error": "bold red", "unresolved_label": "bold yellow",
    "other": "bold dark_orange", "timeout": "bold magenta", "crash": "bold magenta", "empty": "dim",
}
VERDICT_MARKS = {"assembles": "✓", "syntax_error": "✗", "unresolved_label": "?", "other": "!", "timeout": "⧗",
                 "crash": "☠", "empty": "∅"}
FAIL_STYLE = "bold white on dark_red"
MODES = ("code", "answer", "reference")  # what the answer pane shows (key a)


_CONTROL = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F: 0x2421}


def printable(text: str) -> str:
    """Control characters (a model's noise) shown as their symbols, never sent to the terminal."""
    return text.translate(_CONTROL)


def checkpoint_label(row: LeaderboardRow) -> str:
    return f"{row.checkpoint} · {row.run}" if not row.is_base else f"base · {row.model.rsplit('/', 1)[-1]}"


def verdict_text(row: SampleRow) -> Text:
    """`✗ syntax_error (asar) · line 3 · no match` in the verdict's colour."""
    verdict = row.verdict
    text = Text(f"{VERDICT_MARKS.get(verdict, '·')} {verdict}", style=VERDICT_STYLES.get(verdict, "bold"))
    text.append(f" ({row.checker})", style="dim")
    if row.line:
        text.append(f" · line {row.line}")
    if row.match is not None:
        text.append(" · matches the reference" if row.match else " · differs from the reference",
                    style="green" if row.match else "dim")
    if row.truncated:
        text.append(" · cut at max_new_tokens", style="dim")
    return text


def code_text(code: str, fail_line: int | None) -> Text:
    """Numbered lines; the failing one (1-based, in the snippet) marked and highlighted."""
    lines = code.split("\n") if code else []
    if not lines or not code.strip():
        return Text("(no code in the answer)", style="dim italic")
    width = len(str(len(lines)))
    out = Text()
    for n, line in enumerate(lines, 1):
        failing = n == fail_line
        out.append(f"{'▶' if failing else ' '}{n:>{width}} │ ", style="bold red" if failing else "dim")
        out.append(printable(line.expandtabs(4)) or " ", style=FAIL_STYLE if failing else "")
        if n < len(lines):
            out.append("\n")
    return out


def errors_text(row: SampleRow) -> Text:
    if not row.errors:
        return Text("")
    return Text(printable("\n".join(row.errors)), style="red" if row.verdict != "assembles" else "yellow")


class SampleView(Vertical):
    """One answer: verdict line, error lines, then the code (or the whole answer)."""

    def compose(self) -> ComposeResult:
        yield Static(classes="verdict")
        yield Static(classes="errors")
        with VerticalScroll(classes="code-scroll"):
            yield Static(classes="code")

    def show(self, row: SampleRow | None, mode: str = "code") -> None:
        """`mode`: "code" (what Asar checked, numbered), "answer" (all of it) or "reference"."""
        verdict, errors, code = (self.query_one(f".{c}", Static) for c in ("verdict", "errors", "code"))
        if row is None:
            verdict.update(Text("no answer stored for this prompt", style="dim"))
            errors.update("")
            code.update("")
            return
        verdict.update(verdict_text(row))
        errors.update(errors_text(row))
        errors.display = bool(row.errors)
        if mode == "code":
            code.update(code_text(row.code, row.line))
            return
        text = row.answer if mode == "answer" else row.reference
        code.update(Text(printable(text), style="") if text else
                    Text("(empty answer)" if mode == "answer" else "(this prompt has no reference)", style="dim italic"))


def _sample_name(sample: int) -> str:
    return "greedy" if sample == 0 else f"sample {sample}"


class SampleViewer(Screen):
    """Answers of one checkpoint: a prompt list on the left, the selected answer on the right."""

    CSS_PATH = "samples.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="samples.back", tooltip="Back to the leaderboard"),
        Binding("tab", "next_sample", "Sample", id="samples.next", tooltip="Greedy answer, then each sampled answer (pass@k)"),
        Binding("a", "cycle_mode", "Code/ref", id="samples.mode", tooltip="Show the code Asar checked, the whole answer, or the reference"),
        Binding("f", "next_failure", "Failure", id="samples.failure", tooltip="Jump to the next prompt whose answer did not assemble"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[SampleRow]) -> None:
            super().__init__()
            self.rows = rows

    def __init__(self, services: Services, entry: LeaderboardRow, prompt_set: str) -> None:
        super().__init__()
        self.services, self.entry, self.prompt_set = services, entry, prompt_set
        self.rows: dict[tuple[int, int], SampleRow] = {}
        self.prompts: list[int] = []
        self.sample = 0
        self.mode = MODES[0]
        self.ready = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield DataTable(id="samples-list", cursor_type="row", zebra_stripes=True)
            with Vertical(id="samples-detail"):
                with VerticalScroll(id="samples-prompt"):
                    yield Static(id="samples-prompt-text")
                yield SampleView(id="samples-answer")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Samples · {checkpoint_label(self.entry)}"
        self.sub_title = self.prompt_set
        table = self.query_one(DataTable)
        table.add_column("#", key="idx")
        table.add_column("verdict", key="verdict")
        table.add_column("cat", key="cat")
        self.query_one("#samples-prompt").border_title = "prompt"
        self._load()

    @work(thread=True, group="samples-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            rows = self.services.evals.samples(self.entry.run, self.entry.checkpoint, self.prompt_set)
        except Exception as exc:
            report_from_thread(self, exc, "reading samples failed")
            rows = []
        self.post_message(self.Loaded(rows))

    @on(Loaded)
    def _loaded(self, msg: Loaded) -> None:
        self.rows = {(r.prompt_idx, r.sample): r for r in msg.rows}
        self.prompts = sorted({r.prompt_idx for r in msg.rows})
        table = self.query_one(DataTable)
        table.clear()
        for idx in self.prompts:
            row = self.rows.get((idx, 0)) or self.rows[next(k for k in self.rows if k[0] == idx)]
            mark = Text(VERDICT_MARKS.get(row.verdict, "·") + " " + row.verdict.replace("_", " "),
                        style=VERDICT_STYLES.get(row.verdict, ""))
            table.add_row(str(idx), mark, (row.category or "—")[:10], key=str(idx))
        self._show()
        self.ready = True

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show()

    def current_prompt(self) -> int | None:
        table = self.query_one(DataTable)
        if not self.prompts or not 0 <= table.cursor_row < len(self.prompts):
            return None
        return self.prompts[table.cursor_row]

    def samples_of(self, idx: int) -> list[int]:
        return sorted(s for i, s in self.rows if i == idx)

    def _show(self) -> None:
        idx = self.current_prompt()
        prompt = self.query_one("#samples-prompt-text", Static)
        answer = self.query_one(SampleView)
        if idx is None:
            prompt.update(Text("no answers stored for this checkpoint", style="dim"))
            answer.show(None)
            return
        samples = self.samples_of(idx)
        if self.sample not in samples:
            self.sample = samples[0] if samples else 0
        row = self.rows.get((idx, self.sample))
        first = row or self.rows[(idx, samples[0])]
        prompt.update(Text(printable(first.prompt)))
        self.query_one("#samples-prompt").border_subtitle = first.category or ""
        answer.border_title = f"{self.mode} · {_sample_name(self.sample)} ({samples.index(self.sample) + 1}/{len(samples)})"
        answer.show(row, self.mode)

    def action_next_sample(self) -> None:
        idx = self.current_prompt()
        if idx is None:
            return
        samples = self.samples_of(idx)
        self.sample = samples[(samples.index(self.sample) + 1) % len(samples)] if self.sample in samples else 0
        self._show()

    def action_cycle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._show()

    def action_next_failure(self) -> None:
        table = self.query_one(DataTable)
        n = len(self.prompts)
        for step in range(1, n + 1):
            pos = (table.cursor_row + step) % n
            row = self.rows.get((self.prompts[pos], 0))
            if row is not None and row.verdict != "assembles":
                table.move_cursor(row=pos)
                return
        self.notify("every greedy answer assembles", timeout=3)


class CompareScreen(Screen):
    """Two checkpoints on the same prompt, side by side; n/p move through the prompts."""

    CSS_PATH = "samples.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back", tooltip="Back to the leaderboard"),
        Binding("n,right", "move(1)", "Next", id="compare.next", tooltip="The next prompt"),
        Binding("p,left", "move(-1)", "Prev", id="compare.prev", tooltip="The previous prompt"),
        Binding("d", "next_difference", "Diff", id="compare.diff", tooltip="The next prompt where the two verdicts differ"),
        Binding("tab", "next_sample", "Sample", id="compare.sample", tooltip="Greedy answer, then each sampled answer"),
        Binding("a", "cycle_mode", "Code/ref", id="compare.mode", tooltip="Show the code Asar checked, the whole answers, or the reference"),
    ]

    class Loaded(Message):
        def __init__(self, left: list[SampleRow], right: list[SampleRow]) -> None:
            super().__init__()
            self.left, self.right = left, right

    def __init__(self, services: Services, left: LeaderboardRow, right: LeaderboardRow, prompt_set: str) -> None:
        super().__init__()
        self.services, self.left, self.right, self.prompt_set = services, left, right, prompt_set
        self.data: tuple[dict[tuple[int, int], SampleRow], dict[tuple[int, int], SampleRow]] = ({}, {})
        self.prompts: list[int] = []
        self.pos = 0
        self.sample = 0
        self.mode = MODES[0]
        self.ready = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-where", classes="summary")
        with VerticalScroll(id="compare-prompt"):
            yield Static(id="compare-prompt-text")
        with Horizontal(id="compare-sides"):
            yield SampleView(id="compare-left", classes="side")
            yield SampleView(id="compare-right", classes="side")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Compare"
        self.sub_title = self.prompt_set
        self.query_one("#compare-left").border_title = checkpoint_label(self.left)
        self.query_one("#compare-right").border_title = checkpoint_label(self.right)
        self.query_one("#compare-prompt").border_title = "prompt"
        self._load()

    @work(thread=True, group="compare-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            left = self.services.evals.samples(self.left.run, self.left.checkpoint, self.prompt_set)
            right = self.services.evals.samples(self.right.run, self.right.checkpoint, self.prompt_set)
        except Exception as exc:
            report_from_thread(self, exc, "reading samples failed")
            left, right = [], []
        self.post_message(self.Loaded(left, right))

    @on(Loaded)
    def _loaded(self, msg: Loaded) -> None:
        self.data = ({(r.prompt_idx, r.sample): r for r in msg.left},
                     {(r.prompt_idx, r.sample): r for r in msg.right})
        self.prompts = sorted({k[0] for k in self.data[0]} | {k[0] for k in self.data[1]})
        self._show()
        self.ready = True

    def _show(self) -> None:
        where = self.query_one("#compare-where", Static)
        if not self.prompts:
            where.update("no stored answers to compare")
            return
        idx = self.prompts[self.pos]
        first = self.data[0].get((idx, 0)) or self.data[1].get((idx, 0)) or next(
            r for d in self.data for k, r in d.items() if k[0] == idx)
        where.update(f"prompt [b]{self.pos + 1}[/]/{len(self.prompts)} (#{idx})"
                     + (f" · {escape(first.category)}" if first.category else "")
                     + f" · {_sample_name(self.sample)} · {self.mode}")
        self.query_one("#compare-prompt-text", Static).update(Text(printable(first.prompt)))
        self.query_one("#compare-left", SampleView).show(self.data[0].get((idx, self.sample)), self.mode)
        self.query_one("#compare-right", SampleView).show(self.data[1].get((idx, self.sample)), self.mode)

    def action_move(self, delta: int) -> None:
        if self.prompts:
            self.pos = (self.pos + delta) % len(self.prompts)
            self._show()

    def action_next_difference(self) -> None:
        n = len(self.prompts)
        for step in range(1, n + 1):
            idx = self.prompts[(self.pos + step) % n]
            a, b = self.data[0].get((idx, self.sample)), self.data[1].get((idx, self.sample))
            if (a.verdict if a else None) != (b.verdict if b else None):
                self.pos = (self.pos + step) % n
                self._show()
                return
        self.notify("both checkpoints get the same verdict on every prompt", timeout=3)

    def action_next_sample(self) -> None:
        if not self.prompts:
            return
        idx = self.prompts[self.pos]
        samples = sorted({k[1] for d in self.data for k in d if k[0] == idx})
        self.sample = samples[(samples.index(self.sample) + 1) % len(samples)] if self.sample in samples else 0
        self._show()

    def action_cycle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._show()
