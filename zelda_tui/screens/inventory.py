"""Inventory screen: every configured dataset with its QA numbers; Enter opens the detail."""

from __future__ import annotations

import time
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.screen import ModalScreen, Screen
from rich.text import Text
from textual.widgets import DataTable, Footer, Header, Markdown, ProgressBar, Static

from ..core.inventory import DatasetReport
from ..core.qa import CHARS_PER_TOKEN
from ..core.report import dataset_markdown
from ..services import Services
from .app_api import report_from_thread
from ..widgets.columns import Column, fill_table
from ..core.format import human_bytes, short_time

# Widths follow the cells and the terminal (widgets.columns): numbers are never cut; at 80 columns
# the modified time and input % go first, then the dataset name is cut in the middle.
COLUMNS = (Column("dataset", "dataset", flex=True), Column("records", "records"), Column("size", "size"),
           Column("errors", "errors"), Column("problems", "problems"), Column("dups", "dups"),
           Column("over", "> max len"), Column("input", "input %", drop=2), Column("modified", "modified", drop=3))


def row_cells(r: DatasetReport) -> tuple[Text, ...]:
    if r.error:
        return (Text(r.name), Text("missing"), *(Text("—") for _ in COLUMNS[2:]))
    q = r.qa
    numbers = (f"{r.records:,}", human_bytes(r.bytes), f"{q['parse_errors']['count']:,}", f"{r.problems:,}",
               f"{q['exact_duplicates']:,}", f"{q['length']['over_max']:,}",
               f"{q['input_present'] / max(q['records'], 1):.0%}")
    return (Text(r.name), *(Text(n, justify="right") for n in numbers), Text(short_time(r.mtime)))


class InventoryScreen(Screen):
    CSS_PATH = "inventory.tcss"
    BINDINGS = [
        Binding("r", "rescan", "Re-scan", id="inventory.rescan", tooltip="Scan every dataset again, ignoring the cache"),
        Binding("g", "registry", "Registry", id="inventory.registry", tooltip="Index datasets (sha256) and export datasets_registry.json"),
        Binding("enter", "details", "QA detail", id="inventory.details", tooltip="Open the QA report of the selected dataset", show=True),
    ]

    class ScanProgress(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    class ScanDone(Message):
        def __init__(self, reports: list[DatasetReport], seconds: float) -> None:
            super().__init__()
            self.reports, self.seconds = reports, seconds

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.reports: list[DatasetReport] = []
        self.ready = False  # True once the first scan is on screen (tests and scripts wait for it)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Scanning datasets…", id="inventory-summary", classes="summary")
        yield ProgressBar(id="inventory-progress", show_eta=False)
        yield DataTable(id="inventory-table", cursor_type="row", zebra_stripes=True)
        yield Static("Enter: QA detail · r: re-scan · g: registry index", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Inventory"
        self._fill_table()
        self.scan(force=False)

    def on_resize(self) -> None:
        if self.ready:
            self._fill_table()

    def _fill_table(self) -> None:
        """(Re)build the table for the reports and the terminal's width, keeping the cursor's row."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        fill_table(table, COLUMNS, [row_cells(r) for r in self.reports], [r.name for r in self.reports],
                   self.app.size.width)
        if self.reports:
            table.move_cursor(row=min(max(row, 0), len(self.reports) - 1), animate=False)

    # --- work ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan(self, force: bool) -> None:
        started = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.1 or done >= total:  # no flood of messages
                last[0] = now
                self.post_message(self.ScanProgress(done, total))

        try:
            reports = self.services.datasets.scan(force=force, progress=progress)
        except Exception as exc:  # shown to the user by the app's one error handler
            report_from_thread(self, exc, "scan failed")
            return
        self.post_message(self.ScanDone(reports, time.perf_counter() - started))

    @on(ScanProgress)
    def _progress(self, msg: ScanProgress) -> None:
        bar = self.query_one(ProgressBar)
        bar.remove_class("-hidden")
        bar.update(total=msg.total, progress=msg.done)

    @on(ScanDone)
    def _done(self, msg: ScanDone) -> None:
        self.reports = msg.reports
        self.query_one(ProgressBar).add_class("-hidden")
        self._fill_table()
        max_len = self.services.config.model.max_seq_len
        total = sum(r.records for r in msg.reports)
        broken = [r for r in msg.reports if r.error]
        cached = sum(r.cached for r in msg.reports)
        method = next((r.qa["length"]["method"] for r in msg.reports if r.qa), "")
        text = (
            f"{len(msg.reports)} datasets · {total:,} records · "
            f"{'cached' if cached == len(msg.reports) else 'scanned'} · "
            f"max len {max_len:,} tok ({f'est. {CHARS_PER_TOKEN} ch/tok' if method.startswith('estimate') else method})"
        )
        if broken:
            text += f"\n[b red]{len(broken)} missing/unreadable:[/] {escape(broken[0].error or '')}"
        self.query_one("#inventory-summary", Static).update(text)
        self.ready = True

    @work(thread=True, exclusive=True, group="registry", exit_on_error=False)
    def registry(self) -> None:
        try:
            index = self.services.datasets.registry_index()
        except Exception as exc:
            report_from_thread(self, exc, "registry index failed")
            return
        self.app.call_from_thread(self.notify, f"{len(index.datasets)} datasets indexed → {index.export}", title="Registry")

    # --- actions ---------------------------------------------------------------------
    def action_rescan(self) -> None:
        self.query_one("#inventory-summary", Static).update("Re-scanning datasets…")
        self.scan(force=True)

    def action_registry(self) -> None:
        self.registry()

    def action_details(self) -> None:
        report = self.selected()
        if report is not None:
            self.app.push_screen(DatasetDetailScreen(report))

    @on(DataTable.RowSelected)
    def _row_selected(self, _: DataTable.RowSelected) -> None:
        self.action_details()

    def selected(self) -> DatasetReport | None:
        table = self.query_one(DataTable)
        if not self.reports or table.cursor_row < 0 or table.cursor_row >= len(self.reports):
            return None
        return self.reports[table.cursor_row]

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Re-scan datasets", "Inventory: scan every dataset again", self.action_rescan)
        yield SystemCommand("Index registry", "Inventory: sha256 + datasets_registry.json", self.action_registry)


class DatasetDetailScreen(ModalScreen):
    """The full QA report of one dataset (the same markdown `zelda-tui qa NAME` prints)."""

    CSS_PATH = "inventory.tcss"
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="detail.close", tooltip="Back to the inventory")]

    def __init__(self, report: DatasetReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-body"):
            yield Markdown(dataset_markdown(self.report), id="detail-markdown")
        yield Footer()
