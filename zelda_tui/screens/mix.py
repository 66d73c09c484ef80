"""Mix screen: choose a mix, toggle datasets, edit split parameters, live preview, build, save.

What is built is always what config.toml says (DESIGN: a bundle matches a saved config): `b`
with unsaved edits asks to save them first (default No). A locked mix is read-only here; `n`
saves the mix on screen (a locked one as it is) under a new name, which can then be edited.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, ProgressBar, Select, SelectionList, Static

from ..core.config import MixSpec, mix_problem, name_problem
from ..core.errors import ZeldaError
from ..core.mix import MixPlan, plan
from ..services import Services
from ..services.views import MixBuildView
from .app_api import report_from_thread, zelda_app
from ..widgets.confirm import ConfirmDialog


class MixScreen(Screen):
    CSS_PATH = "mix.tcss"
    BINDINGS = [
        Binding("b", "build", "Build", id="mix.build", tooltip="Build train/eval/val.jsonl for this mix"),
        Binding("ctrl+s", "save", "Save mix", id="mix.save", tooltip="Save this mix into config.toml (comments kept)"),
        Binding("n", "save_as", "Save as new", id="mix.save_as", tooltip="Save the mix on screen under a new name"),
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
        def __init__(self, built: MixBuildView) -> None:
            super().__init__()
            self.built = built

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

    def _options(self) -> list[tuple[str, str]]:
        cfg = self.services.config
        phase_of = {m: p for p, m in cfg.phases.items()}
        return [(n + (f"  (phase {phase_of[n]})" if n in phase_of else ""), n) for n in cfg.mixes]

    def compose(self) -> ComposeResult:
        options = self._options()
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
        for widget in (selection, *self.query(".param").results(Input)):
            widget.disabled = mix.locked  # a locked mix is what trained a model: read-only here
        self._loading = False
        self.refresh_preview()

    def spec(self) -> MixSpec:
        """The mix as edited on screen; raises ZeldaError with a one-line reason."""
        base = self.services.config.mix(self.mix_name)
        try:
            eval_fraction = float(self.query_one("#mix-eval", Input).value)
        except ValueError:
            raise ZeldaError("eval_fraction must be a number between 0 and 1") from None
        try:
            min_eval = int(self.query_one("#mix-min-eval", Input).value)
            seed = int(self.query_one("#mix-seed", Input).value)
        except ValueError:
            raise ZeldaError("min_eval_samples and seed must be whole numbers") from None
        selection = self.query_one(SelectionList)
        chosen = set(selection.selected)
        ordered = [selection.get_option_at_index(i).value for i in range(selection.option_count)]
        datasets = tuple(n for n in ordered if n in chosen)
        spec = dataclasses.replace(base, datasets=datasets, eval_fraction=eval_fraction, min_eval_samples=min_eval,
                                   seed=seed)
        problem = mix_problem(self.services.config, spec)  # the checks config.toml gets, as the values are typed
        if problem is not None:
            raise ZeldaError(problem[1])
        return spec

    def refresh_preview(self) -> None:
        status = self.query_one("#mix-status", Static)
        table = self.query_one(DataTable)
        try:
            spec = self.spec()
        except ZeldaError as exc:
            self.current = None
            status.update(f"[b red]{exc}[/]")
            table.clear()  # no numbers of an earlier, valid input next to an invalid one
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
        if spec.locked:
            note = "  [b yellow]LOCKED[/] read-only"  # the footer shows n Save as new
        elif self.dirty:
            note = "  [yellow](edited — ctrl+s saves, n saves as new; b builds the saved mix)[/]"
        else:
            note = ""
        status.update(
            f"[b]{spec.name}[/]: train {result.total_train:,} · eval {result.total_eval:,} · "
            f"{result.total_records:,} records" + note
        )

    @property
    def dirty(self) -> bool:
        """The mix on screen differs from config.toml (or cannot be read from the widgets)."""
        return self.current is None or self.current != self.services.config.mixes.get(self.mix_name)

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
            reports = self.services.datasets.scan()
        except Exception as exc:
            report_from_thread(self, exc, "counting records failed")
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
            built = self.services.datasets.mix_build(spec, overwrite=overwrite, progress=progress)
        except Exception as exc:
            report_from_thread(self, exc, "build failed")
            self.app.call_from_thread(self.query_one(ProgressBar).add_class, "-hidden")
            return
        self.post_message(self.Built(built))

    @on(BuildProgress)
    def _build_progress(self, msg: BuildProgress) -> None:
        bar = self.query_one(ProgressBar)
        bar.remove_class("-hidden")
        bar.update(total=msg.total, progress=msg.done)
        self.query_one("#mix-status", Static).update(f"Building… {msg.phase} {msg.done:,}/{msg.total:,}")

    @on(Built)
    def _built(self, msg: Built) -> None:
        self.query_one(ProgressBar).add_class("-hidden")
        built = msg.built
        self.query_one("#mix-status", Static).update(
            f"[b green]built[/] {built.out}: train {built.total_train:,} · eval {built.total_eval:,}"
        )
        self.notify(f"{built.name}: train {built.total_train:,}, eval {built.total_eval:,}", title="Mix built")

    # --- actions -----------------------------------------------------------------------
    def action_build(self) -> None:
        """Build the saved mix; edits on screen are saved first only when the user says so."""
        if not self.mix_name:
            return
        if not self.dirty:
            self._build_saved()
            return
        if self.current is None:
            self.notify("fix the mix first (see the status line)", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and self.current is not None and self._save(self.current):
                self._build_saved()
            elif not yes:
                self.notify("nothing built: b builds the mix as saved in config.toml (ctrl+s saves, n saves as new)",
                            severity="warning")

        self.app.push_screen(
            ConfirmDialog(f"Save the edits to {self.mix_name} first?",
                          f"b builds what {self.services.config.path.name} says. Save the edits on screen into "
                          f"[mix.{self.mix_name}], then build it?", yes="Save and build"),
            answered,
        )

    def _build_saved(self) -> None:
        spec = self.services.config.mix(self.mix_name)
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
        if self._save(spec):
            self.notify(f"{spec.name} saved to {self.services.config.path.name}", title="Saved")
            self.refresh_preview()

    def _save(self, spec: MixSpec) -> bool:
        saved = self.services.config.mixes.get(spec.name)
        if saved is not None and saved.locked:
            self.notify(f"{spec.name} is locked and is never changed: n saves it as a new mix", severity="warning")
            return False
        try:
            self.services.datasets.save_mix(spec)
        except ZeldaError as exc:
            zelda_app(self).report_error(exc, "save failed")
            return False
        return True

    def action_save_as(self) -> None:
        """Save the mix on screen under a new name (unlocked), then edit that one."""
        spec = self.current
        if spec is None:
            self.notify("nothing to save: fix the mix first", severity="warning")
            return

        def named(name: str | None) -> None:
            if not name:
                return
            problem = name_problem(name)
            if problem is not None:
                self.notify(f"mix name {name!r} {problem}", severity="error", title="Not saved")
                return
            if name in self.services.config.mixes:
                self.notify(f"a mix named {name} exists already: choose another name", severity="error", title="Not saved")
                return
            new = dataclasses.replace(spec, name=name, locked=False, description="")
            if not self._save(new):
                return
            select = self.query_one("#mix-select", Select)
            select.set_options(self._options())
            select.value = name  # loads it (Select.Changed)
            self.notify(f"{name} saved to {self.services.config.path.name} (from {spec.name})", title="Saved as new mix")

        self.app.push_screen(NewMixDialog(spec.name), named)

    def action_recount(self) -> None:
        self.load_counts()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Build mix", "Mix: build the bundle of the mix on screen", self.action_build)
        yield SystemCommand("Save mix", "Mix: save the mix on screen into config.toml", self.action_save)
        yield SystemCommand("Save mix as new", "Mix: save the mix on screen under a new name", self.action_save_as)


class NewMixDialog(ModalScreen[str | None]):
    """Asks the name of a new mix; Enter saves, Escape cancels (nothing is written)."""

    DEFAULT_CSS = """
    NewMixDialog { align: center middle; }
    NewMixDialog > Vertical { width: 60; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    NewMixDialog Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    NewMixDialog Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="new_mix.cancel", tooltip="Close without saving")]

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]Save {self.source} as a new mix[/b]")
            yield Static("Name of the new [mix.NAME] table (letters, digits, - and _):", markup=False)
            yield Input(placeholder=f"{self.source}_v2", id="new-mix-name")
            with Horizontal():
                yield Button("Save", variant="primary", id="new-mix-save")
                yield Button("Cancel", id="new-mix-cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#new-mix-save")
    def _save(self) -> None:
        self.dismiss(self.query_one(Input).value.strip() or None)

    @on(Button.Pressed, "#new-mix-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
