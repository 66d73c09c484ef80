"""The detail pane of one GPU offer (every field `services.offers.search` returns for it).

It is focusable (Tab from the table): ↑/↓, PgUp/PgDn, Home/End scroll a long price source at 80x24.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widgets import Static

from ..core.format import num
from ..services.views import OfferRow

FIT_COLOURS = {"fits": "green", "tight": "yellow", "does-not-fit": "red"}


def fit_markup(fit: str | None) -> str:
    if fit is None:
        return "[dim]—[/]"
    return f"[b {FIT_COLOURS.get(fit, 'white')}]{fit}[/]"


def detail_text(row: OfferRow, launch: str | None = None) -> str:
    """Markup lines `label  value`: the offer, its price (and where the price came from), fit and estimate.

    `launch` is why `l` cannot rent it (None: it can)."""
    fields = [
        ("offer", f"[b]{escape(row.key)}[/]"),
        ("GPU", f"{row.num_gpus} × {escape(row.gpu_name)} · {num(row.gpu_ram, 'g', suffix=' GB')} each"),
        ("$/h", num(row.dph_total, ".4f")),
        ("fit", f"{fit_markup(row.fit)} · needs {num(row.vram_gb, '.1f', suffix=' GB')} per GPU"),
        ("hours", num(row.hours, ",.2f")),
        ("total $", num(row.dollars, ",.2f")),
        ("tokens/s source", escape(row.tokens_per_s_source or "—")),
        ("price date", escape(row.price_date or "—")),
        ("price source", escape(row.price_source or "—")),
        ("region", escape(row.region or "—")),
        ("provider · id", f"{escape(row.provider)} · {escape(str(row.id))}"),
        ("reliability", num(row.reliability, ".3f")),
        ("available", "yes" if row.available else "no"),
        ("launch", "l rents it (asks first)" if launch is None else f"[yellow]{escape(launch)}[/]"),
    ]
    return "\n".join(f"[b $text-muted]{label:>15}[/]  {value}" for label, value in fields)


class OfferDetail(VerticalScroll):
    """Shows `detail_text(row)`; `row` is the offer shown (None: nothing selected)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.row: OfferRow | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="offer-detail-body")

    @property
    def text(self) -> str:
        """What the pane shows, as plain text."""
        return str(self.query_one(".offer-detail-body", Static).render())

    def show(self, row: OfferRow | None, launch: str | None = None) -> None:
        self.row = row
        self.query_one(".offer-detail-body", Static).update(detail_text(row, launch) if row else "[dim]no offer selected[/]")
