"""Table columns that follow the data and the terminal: widths from the cells, no horizontal clipping.

A screen describes its columns once (`Column`); `fill_table` sizes each to its widest cell (or
label), drops the columns with the highest `drop` rank while the row is wider than the table,
and cuts the one `flex` column in the middle (its tail kept) as a last resort. Numbers are
never cut: a column of numbers is shown whole or not at all (the detail pane has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual.widgets import DataTable

from ..core.format import cut_middle

SCROLLBAR = 2  # kept free so a vertical scrollbar never pushes the last column out
MIN_FLEX = 12


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    drop: int = 0  # 0: always shown; when too wide, the highest rank goes first
    flex: bool = False  # the column that is cut (in the middle) when dropping is not enough
    tail_after: str | None = None  # the flex column keeps its end from this separator on when cut


def cell_text(cell: Text | str) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def plan_widths(columns: Sequence[Column], rows: Sequence[Sequence[Text | str]], width: int,
                padding: int = 1) -> dict[str, int]:
    """{column key: content width} of the columns shown in `width` cells (order kept)."""
    natural = {c.key: max([len(c.label), *(len(cell_text(r[i])) for r in rows)]) for i, c in enumerate(columns)}
    shown = list(columns)

    def total() -> int:
        return sum(natural[c.key] + 2 * padding for c in shown)

    for column in sorted((c for c in columns if c.drop), key=lambda c: -c.drop):
        if total() <= width:
            break
        shown.remove(column)
    widths = {c.key: natural[c.key] for c in shown}
    flex = next((c for c in shown if c.flex), None)
    if flex is not None and total() > width:
        widths[flex.key] = max(MIN_FLEX, len(flex.label), natural[flex.key] - (total() - width))
    return widths


def shown_cells(columns: Sequence[Column], row: Sequence[Text | str], widths: dict[str, int]) -> list[Text | str]:
    """The cells of `row` in the shown columns, the flex one cut in the middle to its width."""
    cells = []
    for column, cell in zip(columns, row):
        if column.key not in widths:
            continue
        if column.flex and len(cell_text(cell)) > widths[column.key]:
            short = cut_middle(cell_text(cell), widths[column.key], column.tail_after)
            cell = Text(short, style=cell.style, justify=cell.justify) if isinstance(cell, Text) else short
        cells.append(cell)
    return cells


def table_widths(table: DataTable, columns: Sequence[Column], rows: Sequence[Sequence[Text | str]],
                 width: int) -> dict[str, int]:
    """`plan_widths` for a table `width` cells wide (a scrollbar's room kept)."""
    return plan_widths(columns, rows, width - SCROLLBAR, table.cell_padding)


def fill_table(table: DataTable, columns: Sequence[Column], rows: Sequence[Sequence[Text | str]],
               keys: Sequence[str], width: int) -> dict[str, int]:
    """Replace the table's columns and rows: `rows[i]` holds one cell per column, `keys[i]` its row key.

    Returns the widths used (a screen that updates cells in place compares them with the next)."""
    widths = table_widths(table, columns, rows, width)
    table.clear(columns=True)
    for index, column in enumerate(columns):
        if column.key in widths:  # a right-aligned column (numbers) gets a right-aligned header
            first = rows[0][index] if rows else None
            right = isinstance(first, Text) and first.justify == "right"
            table.add_column(Text(column.label, justify="right") if right else column.label, width=widths[column.key],
                             key=column.key)
    for row, key in zip(rows, keys):
        table.add_row(*shown_cells(columns, row, widths), key=key)
    return widths
