"""Offers screen: GPU offers of Vast.ai, Vultr and GCP in one table, filtered by a vastai query.

The filter line is the `vastai search offers` grammar (`core.offer_query`); a bad query is shown
with a caret under the bad token and changes nothing else. Every search runs
`services.offers.search` on a worker thread (providers are HTTP calls) and posts one `Results`
message; an older search finishing late is dropped. A provider without a key, or down, is a
warning in the status line (its offline catalog still shows, where it has one).
"""

from __future__ import annotations

from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from rich.text import Text
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Static

from ..core import offer_query
from ..core.format import num
from ..core.offer_query import QueryError
from ..services import Services
from .app_api import report_from_thread
from ..services.views import LaunchPlan, OfferRow
from ..widgets.columns import Column, fill_table
from ..widgets.confirm import ConfirmDialog
from ..widgets.offer_detail import FIT_COLOURS, OfferDetail

PROVIDERS = ("vast", "vultr", "gcp")
# Widths follow the cells and the terminal (widgets.columns): at 80 columns the price date and
# region go first (the key keeps its @region tail, the detail pane has both), then the key is cut
# in the middle; fit / hours / total $ always stay.
COLUMNS = (Column("key", "offer", flex=True, tail_after="@"), Column("gpu", "GPU"), Column("n", "n"),
           Column("vram", "VRAM", drop=3), Column("dph", "$/h"), Column("fit", "fit"), Column("hours", "hours"),
           Column("dollars", "total $"), Column("region", "region", drop=4), Column("date", "price date", drop=5))
# (sort spec, label): offer fields are sorted by services (vastai `-o` spec); hours / dollars are
# estimates on the rows, sorted here (stable over a $/h sort, None last).
SORTS = (
    ("dph_total", "$/h ↑"),
    ("gpu_ram-,dph_total", "VRAM ↓"),
    ("dollars", "total $ ↑"),
    ("hours", "hours ↑"),
    ("-reliability,dph_total", "reliability ↓"),
)
ROW_SORTS = ("hours", "dollars")
RENTABLE = ("vast", "vultr")  # launch.py rents these; GCP is browse-only (create the VM with gcloud)


def row_cells(row: OfferRow) -> tuple[Text, ...]:
    fit = row.fit
    values = {
        "key": row.key, "gpu": row.gpu_name.removeprefix("NVIDIA "), "n": str(row.num_gpus),
        "vram": num(row.gpu_ram, "g"), "dph": num(row.dph_total, ".3f"), "fit": fit or "—",
        "hours": num(row.hours, ",.2f"), "dollars": num(row.dollars, ",.2f"),
        "region": row.region or "—", "date": row.price_date or "—",
    }
    styles = {"fit": f"bold {FIT_COLOURS[fit]}" if fit in FIT_COLOURS else "dim"}
    return tuple(Text(values[c.key], style=styles.get(c.key, "")) for c in COLUMNS)


def listed_live(row: OfferRow) -> bool:
    """Did a provider's API list this offer just now (not the offline catalog)?

    Live Vast/Vultr offers are dated "live"; live GCP offers carry catalog prices but their
    machine type and zone come from the Compute API, which their price source says."""
    return row.price_date == "live" or "live from the Compute API" in (row.price_source or "")


def launch_blocker(row: OfferRow) -> str | None:
    """Why `l` cannot rent this offer, or None when it can."""
    if row.provider not in RENTABLE:
        return f"{row.provider} offers are browse-only here: create the VM with gcloud"
    if row.price_date != "live":
        return (f"{row.key} is from the offline catalog: set {row.provider.upper()}_API_KEY "
                "and refresh (r) to rent live offers")
    return None


def offline_badge(rows: list[OfferRow]) -> str | None:
    """"offline catalog, prices of …" when no live source answered (None when one did, or no rows)."""
    if not rows or any(listed_live(r) for r in rows):
        return None
    dates: dict[str, list[str]] = {}
    for r in rows:
        provider_dates = dates.setdefault(r.provider, [])
        if r.price_date and r.price_date not in provider_dates:
            provider_dates.append(r.price_date)
    return "offline catalog, prices of " + ", ".join(f"{p} {' / '.join(d) or 'undated'}" for p, d in dates.items())


def sort_rows(rows: list[OfferRow], spec: str) -> list[OfferRow]:
    if spec not in ROW_SORTS:
        return rows
    return sorted(rows, key=lambda r: (getattr(r, spec) is None, getattr(r, spec) or 0.0))


class OffersScreen(Screen):
    CSS_PATH = "offers.tcss"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="offers.filter", tooltip="Edit the offer filter: `vastai search offers` queries, same answers; gpu_name=A100 matches "
                "whole words (quote a full name for exact), region=US also its country"),
        Binding("s", "cycle_sort", "Sort", id="offers.sort", tooltip="Sort by the next column: $/h, VRAM, total $, hours, reliability"),
        Binding("r", "refresh", "Refresh", id="offers.refresh", tooltip="Search every selected provider again"),
        Binding("l", "launch", "Launch", id="offers.launch", tooltip="Rent the selected offer (asks first: $/h, estimated total, budget left)"),
        Binding("enter", "details", "Detail", id="offers.details", tooltip="Show or hide the detail of the selected offer (Tab into it to scroll)"),
        Binding("j", "cursor('down')", "Down", id="offers.down", tooltip="Next offer", show=False),
        Binding("k", "cursor('up')", "Up", id="offers.up", tooltip="Previous offer", show=False),
        Binding("escape", "close_details", "Close", id="offers.close", tooltip="Leave the filter; hide the offer detail", show=False),
    ]

    class Results(Message):
        def __init__(self, seq: int, rows: list[OfferRow], warnings: list[str]) -> None:
            super().__init__()
            self.seq, self.rows, self.warnings = seq, rows, warnings

    class LaunchPlan(Message):
        def __init__(self, plan: LaunchPlan) -> None:
            super().__init__()
            self.plan = plan

    class Failed(Message):
        def __init__(self, seq: int, error: Exception) -> None:
            super().__init__()
            self.seq, self.error = seq, error

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.query_text = offer_query.DEFAULT_QUERY  # the query the rows were searched with
        self.sort_index = 0
        self.rows: list[OfferRow] = []
        self.warnings: list[str] = []
        self.error: str | None = None
        self._seq = 0
        self._applied = 0
        self._to_top = False  # the next results are a new order: the cursor goes to the first row
        self.ready = False  # True once the first results are on screen

    @property
    def sort_spec(self) -> str:
        return SORTS[self.sort_index][0]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(offer_query.DEFAULT_QUERY, id="offers-filter", compact=True, placeholder="all offers (no filter)",
                    tooltip="vastai query: field op value …, e.g. gpu_name=A100 gpu_ram>=80 geolocation in [US,CA] "
                    "(Enter searches). As vastai: cpu_cores = host vCPUs, geolocation = country code, "
                    "verified=false or rentable=any widen Vast's defaults. Ours: gpu_name=A100 matches "
                    "whole words (gpu_name=\"A100 SXM4\" is exact), region=US also matches the country")
        with Horizontal(id="offers-providers"):
            for name in PROVIDERS:
                yield Checkbox(name, True, id=f"offers-{name}", compact=True, tooltip=f"Include {name} offers")
        yield Static("", id="offers-badge")
        # the fit colour (red does-not-fit) stays on the highlighted row too
        yield DataTable(id="offers-table", cursor_type="row", zebra_stripes=True, cursor_foreground_priority="renderable")
        yield OfferDetail(id="offers-detail")
        yield Static("Searching offers…", id="offers-status", classes="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Offers"
        self._fill_table(None)
        detail = self.query_one(OfferDetail)
        detail.border_title = "offer"
        detail.border_subtitle = "Tab: scroll · Esc: close"
        self.query_one(DataTable).focus()
        self.search()

    def on_resize(self) -> None:
        if self.ready:
            self._fill_table(self.selected_row())

    def _fill_table(self, keep: OfferRow | None) -> None:
        """(Re)build the table for the rows and the terminal's width; the cursor on `keep`, else on top."""
        table = self.query_one(DataTable)
        fill_table(table, COLUMNS, [row_cells(r) for r in self.rows], [r.key for r in self.rows], self.app.size.width)
        keys = [row.key for row in self.rows]
        row = keys.index(keep.key) if keep is not None and keep.key in keys else 0
        table.move_cursor(row=row, animate=False)
        if row == 0:
            table.scroll_home(animate=False)

    # --- searching ---------------------------------------------------------------------
    def providers(self) -> tuple[str, ...]:
        return tuple(name for name in PROVIDERS if self.query_one(f"#offers-{name}", Checkbox).value)

    def search(self, query: str | None = None) -> None:
        """Search with `query` (default: the last good one); a bad query only shows its error."""
        text = self.query_text if query is None else query.strip()
        try:
            offer_query.parse(text)
        except QueryError as exc:
            self._show_error(exc)
            return
        self.query_text = text
        self._seq += 1
        self._search(self._seq, self.providers(), text, self.sort_spec)
        self._show_status(searching=True)

    @work(thread=True, group="offers-search", exit_on_error=False)
    def _search(self, seq: int, providers: tuple[str, ...], query: str, sort: str) -> None:
        try:
            rows, warnings = self.services.offers.search(providers, query, "dph_total" if sort in ROW_SORTS else sort)
        except QueryError as exc:
            self.post_message(self.Failed(seq, exc))
            return
        except Exception as exc:
            report_from_thread(self, exc, "offer search failed")
            self.post_message(self.Failed(seq, exc))
            return
        self.post_message(self.Results(seq, sort_rows(rows, sort), warnings))

    @on(Results)
    def _results(self, msg: Results) -> None:
        if msg.seq < self._applied:
            return  # an older search finishing late
        self._applied = msg.seq
        self.error = None
        keep = None if self._to_top else self.selected_row()
        self._to_top = False
        self.rows, self.warnings = msg.rows, msg.warnings
        self._fill_table(keep)
        badge = offline_badge(self.rows)
        self.query_one("#offers-badge", Static).update(escape(badge or ""))
        self.set_class(badge is not None, "-offline")
        self._sync_detail()
        self._show_status()
        self.ready = True

    @on(Failed)
    def _failed(self, msg: Failed) -> None:
        if msg.seq < self._applied:
            return
        self._applied = msg.seq
        if isinstance(msg.error, QueryError):
            self._show_error(msg.error)
        else:
            self._show_status()
        self.ready = True  # an answer (if not rows) is on screen

    # --- status line and detail ----------------------------------------------------------
    def _show_error(self, exc: QueryError) -> None:
        self.error = str(exc)
        status = self.query_one("#offers-status", Static)
        status.update(f"[b red]{escape(str(exc))}[/]\n[red]{escape(exc.pointer())}[/]")
        status.add_class("-error")

    def _show_status(self, searching: bool = False) -> None:
        status = self.query_one("#offers-status", Static)
        status.remove_class("-error")
        sort = SORTS[self.sort_index][1]
        parts = [f"[b]{len(self.rows)}[/] offers" if not searching else "Searching…", f"sort [b]{sort}[/]"]
        if not self.query_text:
            parts.insert(1, "all offers (no filter)")
        if self.warnings:
            more = f" [dim](+{len(self.warnings) - 1} more)[/]" if len(self.warnings) > 1 else ""
            parts.append(f"[yellow]{len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''}: "
                         f"{escape(self.warnings[0])}[/]{more}")
        status.update(" · ".join(parts))

    def selected_row(self) -> OfferRow | None:
        table = self.query_one(DataTable)
        if not self.rows or not 0 <= table.cursor_row < min(table.row_count, len(self.rows)):
            return None
        return self.rows[table.cursor_row]

    def _sync_detail(self) -> None:
        detail = self.query_one(OfferDetail)
        if self.has_class("-detail"):
            row = self.selected_row()
            detail.show(row, launch_blocker(row) if row else None)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._sync_detail()
        self.refresh_bindings()  # `l` follows the selected offer

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`l` is greyed out where launch cannot work (GCP, an offline catalog entry); the palette says why."""
        if action == "launch":
            row = self.selected_row()
            return row is not None and launch_blocker(row) is None or None
        return True

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_details()

    # --- events and actions ------------------------------------------------------------
    @on(Input.Submitted, "#offers-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        self.search(event.value)
        if self.error is None:
            self.query_one(DataTable).focus()

    @on(Checkbox.Changed)
    def _providers_changed(self) -> None:
        if self.ready:
            self.search()

    def action_focus_filter(self) -> None:
        self.query_one("#offers-filter", Input).focus()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._to_top = True  # a new order: start reading it from the top
        self.search()

    def action_refresh(self) -> None:
        self.search()

    def action_cursor(self, direction: str) -> None:
        table = self.query_one(DataTable)
        table.action_cursor_down() if direction == "down" else table.action_cursor_up()

    def action_details(self) -> None:
        self.toggle_class("-detail")
        self._sync_detail()

    def action_close_details(self) -> None:
        """Escape: out of the filter line (back to the table), else hide the detail."""
        table = self.query_one(DataTable)
        if not table.has_focus and not self.query_one(OfferDetail).has_focus:
            table.focus()
            return
        self.remove_class("-detail")
        table.focus()

    def action_launch(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        blocker = launch_blocker(row)
        if blocker is not None:
            self.notify(blocker, title="Cannot launch", severity="warning", timeout=6)
            return
        self.notify(f"pricing {row.key}…", timeout=3)
        self._plan_launch(row.key)

    @work(thread=True, group="offers-launch", exit_on_error=False)
    def _plan_launch(self, key: str) -> None:
        try:
            plan = self.services.offers.launch_plan(key)
        except Exception as exc:  # offer gone, no key, provider down: one line, nothing rented
            report_from_thread(self, exc, "launch")
            return
        self.post_message(self.LaunchPlan(plan))

    @on(LaunchPlan)
    def _confirm_launch(self, msg: LaunchPlan) -> None:
        plan, offer, budget = msg.plan, msg.plan.offer, msg.plan.budget
        lines = [f"{offer.num_gpus} x {offer.gpu_name} in {offer.region}", f"${offer.dph_total:.3f}/h"]
        if offer.hours is not None:
            lines.append(f"estimated {offer.hours:.1f} h, ${offer.dollars:.2f} for the phase's mix (VRAM: {offer.fit})")
        if budget.left_usd is not None:
            lines.append(f"budget left: ${budget.left_usd:.2f} of ${budget.max_total_usd:.2f}")
        lines += [f"budget guard: {p}" for p in plan.over_budget]
        if plan.over_budget:
            self.app.push_screen(ConfirmDialog(f"Not launching {escape(offer.key)}", "\n".join(lines), yes="OK"))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._launch(offer.key)

        self.app.push_screen(ConfirmDialog(f"Rent {escape(offer.key)}?", "\n".join(lines), yes="Launch"), answered)

    @work(thread=True, group="offers-launch", exit_on_error=False)
    def _launch(self, key: str) -> None:
        try:
            tracked = self.services.offers.launch(key)
        except Exception as exc:
            report_from_thread(self, exc, "launch failed")
            return
        self.app.call_from_thread(self.notify, f"{tracked.key} is starting (tracked; `zelda-tui instances list`)",
                                  title="Launched")

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Launch offer", "Offers: rent the selected offer after a confirm dialog", self.action_launch)
        yield SystemCommand("Refresh offers", "Offers: search every selected provider again", self.action_refresh)
        yield SystemCommand("Sort offers", "Offers: sort by the next column", self.action_cycle_sort)
        yield SystemCommand("Filter offers", "Offers: edit the vastai query", self.action_focus_filter)
        yield SystemCommand("Offer details", "Offers: show or hide the selected offer's detail", self.action_details)
