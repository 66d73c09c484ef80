"""Train loss and eval loss by step, drawn with textual-plotext from metrics.jsonl events."""

from __future__ import annotations

import math
from typing import Iterable

from textual_plotext import PlotextPlot

MAX_POINTS = 1_000  # per series on screen; longer runs are thinned evenly (the last point always kept)


def _thin(xs: list[float], ys: list[float], limit: int) -> tuple[list[float], list[float]]:
    if len(xs) <= limit:
        return xs, ys
    stride = math.ceil(len(xs) / limit)
    keep = list(range(0, len(xs), stride))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


class LossChart(PlotextPlot):
    """Two series: `loss` of "train" events and `eval_loss` of "eval" events, x = step."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.train: tuple[list[float], list[float]] = ([], [])
        self.eval: tuple[list[float], list[float]] = ([], [])

    @property
    def series(self) -> dict[str, tuple[list[float], list[float]]]:
        return {"loss": self.train, "eval": self.eval}

    def reset(self) -> None:
        self.train, self.eval = ([], []), ([], [])
        self._draw()

    def add_metrics(self, records: Iterable[dict]) -> None:
        """Take a batch of metrics.jsonl records; redraw once if any point was added."""
        added = False
        for rec in records:
            event = rec.get("event")
            key, target = ("loss", self.train) if event == "train" else ("eval_loss", self.eval) if event == "eval" else (None, None)
            if target is None:
                continue
            step, value = rec.get("step"), rec.get(key)
            if isinstance(step, (int, float)) and isinstance(value, (int, float)) and math.isfinite(value):
                target[0].append(step)
                target[1].append(float(value))
                added = True
        if added:
            self._draw()

    def on_mount(self) -> None:
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.xlabel("step")
        if not self.train[0] and not self.eval[0]:
            plt.title("no loss yet")
        else:
            plt.title("")
        if self.train[0]:
            plt.plot(*_thin(*self.train, MAX_POINTS), label="loss", marker="braille")
        if self.eval[0]:
            plt.plot(*_thin(*self.eval, MAX_POINTS), label="eval", marker="braille")
        self.refresh()
