"""Mix screen: choose a mix, toggle datasets, edit split parameters, live preview, build, save."""

from __future__ import annotations

import dataclasses
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, ProgressBar, Select, SelectionList, Static

from ..core.config import MixSpec
from ..core.errors import ZeldaError
from ..core.mix import MixPlan, plan
from ..services import Services
from ..widgets.confirm import ConfirmDialog


class MixScreen(Screen):
    CSS_PATH = "mix.tcss"
    BINDINGS = [
        Binding("b", "build", "Build", id="mix.build", tooltip="Build train/eval/val.jsonl for this mix"),
        Binding("ctrl+s", "save", "Save mix", id="mix.save", tooltip="Save this mix into config.toml (comments kept)"),
        Binding("r", "recount", "Recount", id="mix.recount", tooltip="Re-read record counts from the inventory"),
    ]

    class Counts(Message):
        def __init__(self, counts: dict[str, tuple[int, int]], errors: dict[str, str]) -> None:
            super().__init__()
            self.counts, self.errors = counts, errors

    class BuildProgress(Message):
        def __init__(self, phase: str, done: int, total: int) -> None:
            super().__init__()
            self.phase, self.done, self.total = phase, done, total

    class Built(Message):
        def __init__(self, metadata: dict) -> None:
            super().__init__()
            self.metadata = metadata

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        cfg = services.config
        self.mix_name = cfg.phases.get(2) or next(iter(cfg.mixes), "")
        self.counts: dict[str, tuple[int, int]] = {}
        self.count_errors: dict[str, str] = {}
        self.current: MixSpec | None = None
        self._loading = False
        self.ready = False  # True once record counts are on screen

    def compose(self) -> ComposeResult:
        cfg = self.services.config
        phase_of = {m: p for p, m in cfg.phases.items()}
        options = [(f"{n}" + (f"  (phase {phase_of[n]})" if n in phase_of else ""), n) for n in cfg.mixes]
        yield Header()
        with Horizontal(id="mix-params"):
            yield Select(options, value=self.mix_name or Select.BLANK, allow_blank=not options, id="mix-select", prompt="mix")
            yield Label("eval", classes="param-label")
            yield Input(id="mix-eval", classes="param", tooltip="eval_fraction, between 0 and 1")
            yield Label("min", classes="param-label")
            yield Input(id="mix-min-eval", classes="param", type="integer", tooltip="min_eval_samples per dataset")
            yield Label("seed", classes="param-label")
            yield Input(id="mix-seed", classes="param", type="integer", tooltip="seed of random.Random")
        yield SelectionList[str](id="mix-datasets")
        yield DataTable(id="mix-preview", cursor_type="row", zebra_stripes=True)
        yield ProgressBar(id="mix-progress", classes="-hidden", show_eta=False)
        yield Static("", id="mix-status", classes="summary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Mix"
        self.query_one(DataTable).add_columns("dataset", "records", "train", "eval", "ratio", "errors")
        if self.mix_name:
            self._load_mix(self.mix_name)
        self.load_counts()

    # --- model <-> widgets -------------------------------------------------------------
    def _load_mix(self, name: str) -> None:
        cfg = self.services.config
        mix = cfg.mix(name)
        self.mix_name = name
        self._loading = True
        self.query_one("#mix-eval", Input).value = str(mix.eval_fraction)
        self.query_one("#mix-min-eval", Input).value = str(mix.min_eval_samples)
        self.query_one("#mix-seed", Input).value = str(mix.seed)
        order = list(mix.datasets) + [n for n in cfg.datasets if n not in mix.datasets]
        selection = self.query_one(SelectionList)
        selection.clear_options()
        for n in order:
            label = n + ("  (optional)" if n in mix.optional else "")
            selection.add_option((label, n, n in mix.datasets))
        self._loading = False
        self.refresh_preview()

    def spec(self) -> MixSpec:
        """The mix as edited on screen; raises ZeldaError with a one-line reason."""
        base = self.services.config.mix(self.mix_name)
        try:
            eval_fraction = float(self.query_one("#mix-eval", Input).value)
        except ValueError:
            raise ZeldaError("eval fraction must be a number between 0 and 1") from None
        if not 0 < eval_fraction < 1:
            raise ZeldaError(f"eval fraction must be between 0 and 1 (exclusive), got {eval_fraction}")
        try:
            min_eval = int(self.query_one("#mix-min-eval", Input).value)
            seed = int(self.query_one("#mix-seed", Input).value)
        except ValueError:
            raise ZeldaError("min eval samples and seed must be whole numbers") from None
        if min_eval < 0:
            raise ZeldaError("min eval samples must be >= 0")
        selection = self.query_one(SelectionList)
        chosen = set(selection.selected)
        ordered = [selection.get_option_at_index(i).value for i in range(selection.option_count)]
        datasets = tuple(n for n in ordered if n in chosen)
        if not datasets:
            raise ZeldaError("select at least one dataset")
        return dataclasses.replace(base, datasets=datasets, eval_fraction=eval_fraction, min_eval_samples=min_eval, seed=seed)

    def refresh_preview(self) -> None:
        status = self.query_one("#mix-status", Static)
        table = self.query_one(DataTable)
        try:
            spec = self.spec()
        except ZeldaError as exc:
            self.current = None
            status.update(f"[b red]{exc}[/]")
            return
        self.current = spec
        missing = [n for n in spec.datasets if n in self.count_errors]
        waiting = [n for n in spec.datasets if n not in self.counts and n not in self.count_errors]
        table.clear()
        if missing:
            status.update(f"[b red]dataset '{missing[0]}': {self.count_errors[missing[0]]}[/]")
            return
        if waiting:
            status.update("Counting records…")
            return
        result = plan(spec, [(n, "", *self.counts[n]) for n in spec.datasets])
        self._fill(result)
        dirty = spec != self.services.config.mixes.get(spec.name)
        status.update(
            f"[b]{spec.name}[/]: train {result.total_train:,} · eval {result.total_eval:,} · "
            f"{result.total_records:,} records" + ("  [yellow](edited — ctrl+s saves)[/]" if dirty else "")
        )

    def _fill(self, result: MixPlan) -> None:
        table = self.query_one(DataTable)
        for d in result.datasets:
            table.add_row(d.name, f"{d.total:,}", f"{d.train:,}", f"{d.eval:,}", f"{d.ratio_percent:.2f} %", f"{d.parse_errors:,}")
        table.add_row("total", f"{result.total_records:,}", f"{result.total_train:,}", f"{result.total_eval:,}", "100 %",
                      f"{result.parse_errors_total:,}")

    @on(Select.Changed, "#mix-select")
    def _mix_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.mix_name:
            self._load_mix(event.value)

    @on(Input.Changed)
    @on(SelectionList.SelectedChanged)
    def _edited(self) -> None:
        if not self._loading:
            self.refresh_preview()

    # --- workers -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="mix-counts", exit_on_error=False)
    def load_counts(self) -> None:
        try:
            reports = self.services.scan()
        except Exception as exc:
            self.app.call_from_thread(self.app.report_error, exc, "counting records failed")
            return
        counts = {
            r.name: (r.qa["records"], r.qa["parse_errors"]["count"] + r.qa["not_object"]["count"])
            for r in reports if not r.error
        }
        self.post_message(self.Counts(counts, {r.name: r.error for r in reports if r.error}))

    @on(Counts)
    def _counts(self, msg: Counts) -> None:
        self.counts, self.count_errors = msg.counts, msg.errors
        self.refresh_preview()
        self.ready = True

    @work(thread=True, exclusive=True, group="mix-build", exit_on_error=False)
    def build(self, spec: MixSpec, overwrite: bool) -> None:
        def progress(phase: str, done: int, total: int) -> None:
            self.post_message(self.BuildProgress(phase, done, total))

        try:
            metadata = self.services.mix_build(spec, overwrite=overwrite, progress=progress)
        except Exception as exc:
            self.app.call_from_thread(self.app.report_error, exc, "build failed")
            self.app.call_from_thread(self.query_one(ProgressBar).add_class, "-hidden")
            return
        self.post_message(self.Built(metadata))

    @on(BuildProgress)
    def _build_progress(self, msg: BuildProgress) -> None:
        bar = self.query_one(ProgressBar)
        bar.remove_class("-hidden")
        bar.update(total=msg.total, progress=msg.done)
        self.query_one("#mix-status", Static).update(f"Building… {msg.phase} {msg.done:,}/{msg.total:,}")

    @on(Built)
    def _built(self, msg: Built) -> None:
        self.query_one(ProgressBar).add_class("-hidden")
        meta = msg.metadata
        out = self.services.config.mix_dir(meta["name"])
        self.query_one("#mix-status", Static).update(
            f"[b green]built[/] {out}: train {meta['total_train']:,} · eval {meta['total_eval']:,}"
        )
        self.notify(f"{meta['name']}: train {meta['total_train']:,}, eval {meta['total_eval']:,}", title="Mix built")

    # --- actions -----------------------------------------------------------------------
    def action_build(self) -> None:
        spec = self.current
        if spec is None:
            self.notify("fix the mix first (see the status line)", severity="warning")
            return
        out = self.services.config.mix_dir(spec.name)
        if out.is_dir() and any(out.iterdir()):
            def answered(yes: bool | None) -> None:
                if yes:
                    self.build(spec, True)

            self.app.push_screen(
                ConfirmDialog("Replace the existing bundle?", f"{out} already holds a build of {spec.name}.\n"
                              "It is replaced atomically when the new build completes.", yes="Rebuild"),
                answered,
            )
        else:
            self.build(spec, False)

    def action_save(self) -> None:
        spec = self.current
        if spec is None:
            self.notify("nothing to save: fix the mix first", severity="warning")
            return
        try:
            self.services.save_mix(spec)
        except ZeldaError as exc:
            self.app.report_error(exc, "save failed")
            return
        self.notify(f"{spec.name} saved to {self.services.config.path.name}", title="Saved")
        self.refresh_preview()

    def action_recount(self) -> None:
        self.load_counts()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Build mix", "Mix: build the bundle of the mix on screen", self.action_build)
        yield SystemCommand("Save mix", "Mix: save the mix on screen into config.toml", self.action_save)
