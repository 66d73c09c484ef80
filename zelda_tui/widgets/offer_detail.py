"""The detail pane of one GPU offer (every field `services.offers_search` returns for it)."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

FIT_COLOURS = {"fits": "green", "tight": "yellow", "does-not-fit": "red"}


def fit_markup(fit: str | None) -> str:
    if fit is None:
        return "[dim]—[/]"
    return f"[{FIT_COLOURS.get(fit, 'white')}]{fit}[/]"


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else format(value, spec) + suffix


def detail_text(row: dict) -> str:
    """Markup lines `label  value`: the offer, its price (and where the price came from), fit and estimate."""
    fields = [
        ("offer", f"[b]{escape(row['key'])}[/]"),
        ("provider", escape(row["provider"])),
        ("id", escape(str(row["id"]))),
        ("GPU", f"{row['num_gpus']} × {escape(row['gpu_name'])} · {_num(row['gpu_ram'], 'g', ' GB')} each"),
        ("region", escape(row["region"] or "—")),
        ("$/h", _num(row["dph_total"], ".4f")),
        ("reliability", _num(row["reliability"], ".3f")),
        ("available", "yes" if row["available"] else "no"),
        ("price date", escape(row["price_date"] or "—")),
        ("price source", escape(row["price_source"] or "—")),
        ("fit", f"{fit_markup(row['fit'])} · needs {_num(row['vram_gb'], '.1f', ' GB')} per GPU"),
        ("hours", _num(row["hours"], ",.2f")),
        ("total $", _num(row["dollars"], ",.2f")),
        ("tokens/s source", escape(row["tokens_per_s_source"] or "—")),
    ]
    return "\n".join(f"[b $text-muted]{label:>15}[/]  {value}" for label, value in fields)


class OfferDetail(Static):
    """Shows `detail_text(row)`; `row` is the offer shown (None: nothing selected)."""

    def __init__(self, **kw) -> None:
        super().__init__("", **kw)
        self.row: dict | None = None

    def show(self, row: dict | None) -> None:
        self.row = row
        self.update(detail_text(row) if row else "[dim]no offer selected[/]")
