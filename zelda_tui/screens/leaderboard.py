"""Leaderboard screen: every scored checkpoint of every run, ranked, with the base model as a row.

The table is `services.evals.leaderboard(prompt_set, sort)`, read on a worker thread. `s` (or a click
on a column header) re-ranks by another column; `p` switches prompt set; Enter opens the
sample viewer of the selected checkpoint; `c` marks a checkpoint and `c` on a second one
opens both side by side; `e` evaluates a run (generation runs in a child process started by
the services; this screen only posts its progress); `x` exports the selected checkpoint (merged,
GGUF if asked; `⇩` marks the exported ones).
"""

from __future__ import annotations

import threading
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from rich.text import Text
from textual.widgets import DataTable, Footer, Header, Static

from ..core import leaderboard
from ..core.evals import GenerateOptions
from ..core.leaderboard import LeaderboardRow
from ..core.format import percent as pct
from ..services import Services
from .app_api import report_from_thread, zelda_app
from ..services.evals import EvalReport
from ..services.views import LeaderboardView
from ..widgets.eval_dialog import EvalChoice, EvalDialog
from ..widgets.columns import Column, fill_table
from .export_jobs import ExportsFromScreen
from .samples import CompareScreen, SampleViewer

# Widths follow the cells and the terminal (widgets.columns): at 80 columns step, unresolved and
# syntax go first (the detail line has them), then the run name is cut in the middle keeping its
# _timestamp, so two runs of one model never look alike.
COLUMNS = (
    Column("rank", "#"), Column("run", "run", flex=True, tail_after="_"), Column("ckpt", "ckpt"),
    Column("asm", "asm"), Column("p1", "pass@1"), Column("pk", "pass@k"), Column("match", "match"),
    Column("loss", "eval loss"), Column("syntax", "syntax", drop=2), Column("unres", "unresolved", drop=3),
    Column("step", "step", drop=4),
)
SORT_BY_COLUMN = {"run": "run", "ckpt": "step", "asm": "assemble", "p1": "pass1", "pk": "passk", "match": "match",
                  "loss": "eval_loss", "step": "step"}  # a header click ranks by its column
SORTS = (("assemble", "assembles ↓"), ("pass1", "pass@1 ↓"), ("passk", "pass@k ↓"), ("match", "match ↓"),
         ("eval_loss", "eval loss ↑"), ("step", "step ↓"), ("run", "run ↑"))
LIVE_REFRESH_S = 15.0
EMPTY_HINT = ("No eval results yet. Press [b]e[/b] to evaluate a run's checkpoints (base model included), "
              "or from a shell:\n  [b]zelda-tui eval run --run RUN[/b]   (runs: [b]zelda-tui train list[/b])")


def row_cells(row: LeaderboardRow, marked: bool) -> tuple[Text | str, ...]:
    rates = row.rates
    run = row.model.rsplit("/", 1)[-1] if row.is_base else row.run  # the base row: its model, in italics
    pk = pct(row.pass_at_k) + (f" k{row.samples}" if row.pass_at_k is not None else "")
    numbers = (pct(row.pass_at_1), pk, pct(row.match_rate),
               "—" if row.eval_loss is None else f"{row.eval_loss:.3f}",
               pct(rates.get("syntax_error", 0.0)), pct(rates.get("unresolved_label", 0.0)),
               "—" if row.step is None else str(row.step))
    return (
        Text(("◆" if marked else "") + str(row.rank), style="bold cyan" if marked else ""),
        Text(run, style="italic" if row.is_base else ""),
        row.checkpoint.removeprefix("checkpoint-") + "".join(leaderboard.BEST_MARKS[m] for m in row.best)
        + (leaderboard.EXPORT_MARK if row.exported else ""),
        Text(pct(row.assemble_rate), style="bold", justify="right"),
        *(Text(n, justify="right") for n in numbers),
    )


def detail_text(row: LeaderboardRow) -> str:
    """The selected row in full: every verdict class, match count, per-dataset eval loss."""
    parts = [f"[b]{escape(row.checkpoint)}[/] of {escape(row.run)}" if not row.is_base
             else f"[b]base model[/] {escape(row.model)}"]
    parts.append(f"{row.prompts} prompts" + (f", k={row.samples}" if row.samples else ""))
    parts.append(", ".join(f"{v.replace('_', ' ')} {pct(r)}" for v, r in row.rates.items()) or "no answers")
    if row.with_reference:
        parts.append(f"match {row.matched}/{row.with_reference}")
    if row.eval_loss_by_dataset:
        parts.append("eval loss " + ", ".join(f"{escape(d)} {v:.3f}" for d, v in sorted(row.eval_loss_by_dataset.items())))
    if row.best:
        parts.append(" and ".join({leaderboard.BEST_ASSEMBLES: "★ assembles best of its run",
                                   leaderboard.BEST_LOSS: "▼ lowest eval loss of its run (early stopping's pick)"}[m]
                                  for m in row.best))
    if row.exported:
        parts.append(f"{leaderboard.EXPORT_MARK} exported: {escape(leaderboard.export_text(row.exported))}")
    if row.prompts_changed:
        parts.append("[yellow]scored on an older version of the prompt set[/]")
    return " · ".join(parts)


def _table_key(row: LeaderboardRow) -> str:
    """The DataTable row key of a leaderboard row."""
    return f"{row.run}\t{row.checkpoint}"


class LeaderboardScreen(ExportsFromScreen, Screen):
    CSS_PATH = "leaderboard.tcss"
    BINDINGS = [
        Binding("enter", "view", "Samples", id="leaderboard.view", tooltip="Prompts, answers and Asar's verdicts of the selected checkpoint"),
        Binding("s", "cycle_sort", "Sort", id="leaderboard.sort", tooltip="Rank by the next column: assembles, pass@1, pass@k, match, eval loss, step, run"),
        Binding("c", "compare", "Compare", id="leaderboard.compare", tooltip="Mark a checkpoint; on a second one, show both side by side"),
        Binding("e", "evaluate", "Eval", id="leaderboard.eval", tooltip="Evaluate a run's checkpoints (generate, assemble, score)"),
        Binding("x", "export", "Export", id="leaderboard.export", tooltip="Export the selected checkpoint: merged into its base, GGUF if asked, each verified by running it"),
        Binding("p", "next_prompt_set", "Prompts", id="leaderboard.prompt_set", tooltip="Show the results of the next prompt set"),
        Binding("r", "refresh", "Refresh", id="leaderboard.refresh", tooltip="Read the results again"),
        Binding("y", "copy", "Copy run", id="leaderboard.copy", tooltip="Copy the selected row's run name to the clipboard (OSC 52)", show=False),
    ]

    class Loaded(Message):
        def __init__(self, seq: int, board: LeaderboardView) -> None:
            super().__init__()
            self.seq, self.board = seq, board

    class RunsListed(Message):
        def __init__(self, runs: list[str]) -> None:
            super().__init__()
            self.runs = runs

    class EvalProgress(Message):
        def __init__(self, run: str, checkpoint: str, done: int, total: int) -> None:
            super().__init__()
            self.run, self.checkpoint, self.done, self.total = run, checkpoint, done, total

    class EvalDone(Message):
        def __init__(self, report: EvalReport | None) -> None:
            super().__init__()
            self.report = report

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.rows: list[LeaderboardRow] = []
        self.prompt_set: str | None = None
        self.prompt_sets: list[str] = []
        self.sort_index = 0
        self.marked: tuple[str, str] | None = None  # (run, checkpoint) picked for a compare
        self.evaluating: str | None = None  # status text while an eval runs
        self.exporting: dict[tuple[str, str], str] = {}  # (run, checkpoint) -> its export's latest progress line
        self._cancel = threading.Event()
        self._export_cancel = self._cancel  # one event: quitting ends the eval and the exports
        self._seq = 0
        self._applied = 0
        self.ready = False

    @property
    def sort(self) -> str:
        return SORTS[self.sort_index][0]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading results…", id="leaderboard-status", classes="summary")
        yield DataTable(id="leaderboard-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="leaderboard-detail", classes="hint")
        yield Static(EMPTY_HINT, id="leaderboard-empty", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Leaderboard"
        self._fill_table(None)
        self.query_one(DataTable).focus()
        self.refresh_board()
        # answers the box generates while training land in run dirs (the Runs screen's mirror): picked up here
        self.set_interval(LIVE_REFRESH_S, self._live_refresh)

    def _live_refresh(self) -> None:
        if self.ready and self.is_current and self.evaluating is None:
            self.refresh_board()

    def on_resize(self) -> None:
        if self.ready:
            self._fill_table(self.selected_row())

    def _fill_table(self, keep: LeaderboardRow | None) -> None:
        """(Re)build the table for the rows and the terminal's width; the cursor back on `keep`."""
        table = self.query_one(DataTable)
        fill_table(table, COLUMNS, [row_cells(r, self._is_marked(r)) for r in self.rows],
                   [_table_key(r) for r in self.rows], self.app.size.width)
        keys = [r.key for r in self.rows]
        if keep is not None and keep.key in keys:
            table.move_cursor(row=keys.index(keep.key), animate=False)

    def on_screen_resume(self) -> None:
        if self.ready:
            self.refresh_board()

    def on_unmount(self) -> None:
        self._cancel.set()  # a running eval's generator (or export program) is terminated, not orphaned

    # --- loading -------------------------------------------------------------------------
    def refresh_board(self) -> None:
        self._seq += 1
        self._load(self._seq, self.prompt_set, self.sort)

    @work(thread=True, group="leaderboard-load", exit_on_error=False)
    def _load(self, seq: int, prompt_set: str | None, sort: str) -> None:
        try:
            board = self.services.evals.leaderboard(prompt_set, sort)
        except Exception as exc:
            report_from_thread(self, exc, "reading eval results failed")
            board = LeaderboardView(None, [], sort, [])
        self.post_message(self.Loaded(seq, board))

    @on(Loaded)
    def _loaded(self, msg: Loaded) -> None:
        if msg.seq < self._applied:
            return  # an older read finishing late
        self._applied = msg.seq
        selected = self.selected_row()
        self.rows = msg.board.rows
        self.prompt_set, self.prompt_sets = msg.board.prompt_set, msg.board.prompt_sets
        self._fill_table(selected)
        self.set_class(not self.rows, "-empty")
        self._show_status()
        self._show_detail()
        self.ready = True

    def _is_marked(self, row: LeaderboardRow) -> bool:
        return self.marked == row.key

    def _show_status(self) -> None:
        status = self.query_one("#leaderboard-status", Static)
        parts = []
        if self.prompt_set:
            others = len(self.prompt_sets) - 1
            parts.append(f"prompt set [b]{escape(self.prompt_set)}[/]" + (f" [dim](+{others}: p)[/]" if others > 0 else ""))
            parts.append(f"{len(self.rows)} checkpoint{'s' if len(self.rows) != 1 else ''}")
            parts.append(f"sort [b]{SORTS[self.sort_index][1]}[/]")
        if self.marked:
            parts.append(f"[cyan]compare {escape(self.marked[1])} with… (c)[/]")
        if self.evaluating:
            parts.append(f"[yellow]{escape(self.evaluating)}[/]")
        for (run, checkpoint), text in self.exporting.items():
            parts.append(f"[yellow]exporting {escape(run)} {escape(checkpoint)}: {escape(text)}[/]")
        status.update(" · ".join(parts) or "no eval results")

    def selected_row(self) -> LeaderboardRow | None:
        table = self.query_one(DataTable)
        if not self.rows or not 0 <= table.cursor_row < min(table.row_count, len(self.rows)):
            return None
        return self.rows[table.cursor_row]

    def _show_detail(self) -> None:
        row = self.selected_row()
        self.query_one("#leaderboard-detail", Static).update(detail_text(row) if row else "")

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_view()

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        sort = SORT_BY_COLUMN.get(event.column_key.value or "")
        names = [name for name, _ in SORTS]
        if sort in names:
            self.sort_index = names.index(sort)
            self.refresh_board()

    # --- actions -------------------------------------------------------------------------
    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.refresh_board()

    def action_refresh(self) -> None:
        self.refresh_board()

    def action_copy(self) -> None:
        row = self.selected_row()
        if row is None:
            self.notify("no checkpoint selected", severity="warning", timeout=3)
            return
        zelda_app(self).copy_text(row.model if row.is_base else row.run, "run name")

    def action_next_prompt_set(self) -> None:
        if len(self.prompt_sets) < 2 or self.prompt_set not in self.prompt_sets:
            self.notify("only one prompt set has results", timeout=3)
            return
        self.prompt_set = self.prompt_sets[(self.prompt_sets.index(self.prompt_set) + 1) % len(self.prompt_sets)]
        self.marked = None
        self.refresh_board()

    def action_view(self) -> None:
        row = self.selected_row()
        if row is None or self.prompt_set is None:
            self.notify("no checkpoint selected", severity="warning", timeout=3)
            return
        self.app.push_screen(SampleViewer(self.services, row, self.prompt_set))

    def action_compare(self) -> None:
        row = self.selected_row()
        if row is None or self.prompt_set is None:
            self.notify("no checkpoint selected", severity="warning", timeout=3)
            return
        if self.marked is None or self.marked == row.key:
            self.marked = None if self.marked == row.key else row.key
            self._redraw_marks()
            return
        first = next((r for r in self.rows if r.key == self.marked), None)
        self.marked = None
        self._redraw_marks()
        if first is not None:
            self.app.push_screen(CompareScreen(self.services, first, row, self.prompt_set))

    def _redraw_marks(self) -> None:
        table = self.query_one(DataTable)
        for row in self.rows:
            table.update_cell(_table_key(row), "rank", row_cells(row, self._is_marked(row))[0])
        self._show_status()

    # --- evaluating ----------------------------------------------------------------------
    def action_evaluate(self) -> None:
        if self.evaluating:
            self.notify("an eval is running; its progress is in the status line", severity="warning", timeout=4)
            return
        missing = self.services.evals.stack_missing()  # say what to install before the dialog, not after a failed start
        if missing:
            self.notify(missing, title="Cannot evaluate here", severity="error", timeout=10, markup=False)
            return
        self._list_runs()

    @work(thread=True, group="leaderboard-runs", exit_on_error=False)
    def _list_runs(self) -> None:
        try:
            names = [info.name for info in self.services.runs.list_all()]
        except Exception as exc:
            report_from_thread(self, exc, "listing runs failed")
            return
        self.post_message(self.RunsListed(names))

    @on(RunsListed)
    def _runs_listed(self, msg: RunsListed) -> None:
        if not msg.runs:
            self.notify("no runs to evaluate yet: start one on the Runs screen (4)", severity="warning", timeout=5)
            return
        row = self.selected_row()
        dialog = EvalDialog(msg.runs, row.run if row and not row.is_base else None,
                            str(self.services.evals.default_prompts))

        def chosen(choice: EvalChoice | None) -> None:
            if choice is not None:
                self.evaluating = f"evaluating {choice.run}: starting…"
                self._show_status()
                self._evaluate(choice)

        self.app.push_screen(dialog, chosen)

    @work(thread=True, group="leaderboard-eval", exit_on_error=False)
    def _evaluate(self, choice: EvalChoice) -> None:
        from pathlib import Path

        report = None

        def say(text: str) -> None:
            self.post_message(self.EvalProgress(choice.run, text, 0, 0))

        try:
            report = self.services.evals.run(
                choice.run, choice.checkpoint, Path(choice.prompts) if choice.prompts else None,
                GenerateOptions(samples=choice.samples, max_new_tokens=choice.max_new_tokens),
                progress=lambda name, done, total: self.post_message(self.EvalProgress(choice.run, name, done, total)),
                cancel=self._cancel, say=say)
        except Exception as exc:
            report_from_thread(self, exc, "eval failed")
        self.post_message(self.EvalDone(report))

    @on(EvalProgress)
    def _eval_progress(self, msg: EvalProgress) -> None:
        self.evaluating = (f"evaluating {msg.run}: {msg.checkpoint} {msg.done}/{msg.total} answers" if msg.total
                           else f"evaluating {msg.run}: {msg.checkpoint}")  # a phase: "generating on the box …"
        self._show_status()

    @on(EvalDone)
    def _eval_done(self, msg: EvalDone) -> None:
        self.evaluating = None
        report = msg.report
        if report is not None:
            scored = [c for c in report.checkpoints if c.state != "failed"]
            text = f"{len(scored)} of {len(report.checkpoints)} checkpoints scored on {report.prompts} prompts"
            if report.problems:
                text += f"; {len(report.problems)} bad prompt lines skipped ({report.problems[0]})"
            for failed in report.failed:
                text += f"\n{failed.checkpoint}: {failed.message}"
            self.notify(text, title=f"Eval of {report.run}", severity="warning" if report.failed or report.problems
                        else "information", timeout=10)
            self.prompt_set = report.prompt_set
        self.refresh_board()

    # --- exporting -----------------------------------------------------------------------
    def action_export(self) -> None:
        row = self.selected_row()
        if row is None:
            self.notify("no checkpoint selected", severity="warning", timeout=3)
            return
        if row.is_base:
            self.notify("the base model has no adapter to export: select a checkpoint of a run", severity="warning",
                        timeout=5)
            return
        self._ask_export(row.run, row.checkpoint)

    def _exports_changed(self) -> None:
        self._show_status()
        self.refresh_board()  # the ⇩ mark

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Export checkpoint", "Leaderboard: merge the selected checkpoint into its base (GGUF if asked)", self.action_export)
        yield SystemCommand("Evaluate a run", "Leaderboard: generate, assemble with Asar and score a run's checkpoints", self.action_evaluate)
        yield SystemCommand("View samples", "Leaderboard: answers and verdicts of the selected checkpoint", self.action_view)
        yield SystemCommand("Compare checkpoints", "Leaderboard: mark the selected checkpoint for a side-by-side compare", self.action_compare)
        yield SystemCommand("Sort leaderboard", "Leaderboard: rank by the next column", self.action_cycle_sort)
        yield SystemCommand("Refresh leaderboard", "Leaderboard: read the results again", self.refresh_board)
        yield SystemCommand("Copy run name", "Leaderboard: the selected row's run name to the clipboard (OSC 52)", self.action_copy)
