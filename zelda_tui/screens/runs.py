"""Runs screen: the runs table, and for the selected run a live train.log tail and a loss chart.

Everything on disk is read on worker threads: the runs list (`services.runs.list_all()`) every
~2 s, and the selected run's train.log / metrics.jsonl through `core.runs.LineTail` (byte
offset, complete lines only) every ~0.25 s. Each poll posts one batch; the UI appends it in
one go. Switching the selection starts fresh tails (a finished run replays from the start).

A remote run's files are local too: while it is selected, a worker runs its mirror (which
copies the box's logs into the local run dir, reconnecting on its own, and watches GPU idle
and disk); the same local tails then show them, and the summary shows the connection. A run
that moved to another box (`R`, `train recover`, `[recovery] auto`) is followed there, and the
boxes it has been on are listed under the summary.

`x` exports the selected run's checkpoint (its best-scored one, else its final adapters, else
its latest checkpoint: the dialog says which and takes another) on a thread worker; its progress
takes the summary's second line while it runs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker

from ..core import runs
from ..core.errors import NoCheckpoints, ZeldaError
from ..core.format import duration, num
from ..services import Services, UnknownHostKey
from .app_api import report_from_thread, zelda_app
from .export_jobs import ExportsFromScreen
from ..services.recovery import BoxStay, RecoveryPlan
from ..services.views import InstanceRow, RunView
from ..widgets.columns import Column, fill_table, shown_cells, table_widths
from ..widgets.confirm import ConfirmDialog
from ..widgets.export_dialog import default_checkpoint
from ..widgets.log_view import MAX_LINES, LogView
from ..widgets.loss_chart import LossChart
from ..widgets.start_run import StartRunDialog

# Widths follow the cells and the terminal (widgets.columns): at 80 columns eval, tok/s and mix go
# first, then the run name is cut in the middle keeping its _timestamp.
COLUMNS = (Column("name", "name", flex=True, tail_after="_"), Column("host", "host"), Column("state", "state"),
           Column("mix", "mix", drop=2), Column("step", "step/max"), Column("loss", "loss"), Column("eval", "eval", drop=4),
           Column("tps", "tok/s", drop=3), Column("eta", "ETA"))
LIST_EVERY_S = 2.0
INSTANCES_EVERY = 15  # ask the provider about tracked instances every 15th runs list (~30 s)
TAIL_EVERY_S = 0.25
REPLAY_BYTES = 4 * 1024 * 1024  # a long train.log replays from its last 4 MB (the pane keeps 2,000 lines anyway)
EMPTY_HINT = ("No runs yet. Press [b]n[/b] to start one, or from a shell:  [b]zelda-tui train start --phase 0[/b]\n"
              "(it trains on the phase's mix; build or edit mixes on the Mix screen, key 2)")


def row_cells(info: RunView) -> tuple[str, ...]:
    step = f"{info.step:,}" + (f"/{info.max_steps:,}" if info.max_steps else "")
    return (info.name, info.host or "local", str(info.state), info.mix or "—", step,
            num(info.loss, ".3f"),
            num(info.eval_loss, ".3f"), num(info.tokens_per_s, ",.0f"), duration(info.eta_s))


def instance_line(row: InstanceRow) -> str:
    """A tracked GPU instance: what, state, where to SSH once it is ready, what it costs."""
    ssh = f"ssh root@{row.ssh_host}:{row.ssh_port or 22}" if row.ssh_host else "no SSH endpoint yet"
    warn = f" · [yellow]{escape(row.warning)}[/]" if row.warning else ""
    return (f"[b]{escape(row.key)}[/b] · {row.num_gpus} x {escape(row.gpu_name or '')} · {row.state} · {escape(ssh)} · "
            f"${row.dph_total or 0:.2f}/h · ${row.spent_usd or 0:,.2f} so far{warn}")


def boxes_text(stays: list[BoxStay], now: float) -> str:
    """A recovered run's boxes, one a line, oldest first: where it picked up, how long, what it cost."""
    return "\n".join(f"{'→' if i else ' '} {escape(s.line(now))}" for i, s in enumerate(stays))


def summary_text(info: RunView, link: str | None = None) -> str:
    state = info.state
    colour = {"running": "green", "starting": "green", "completed": "cyan", "failed": "red", "died": "red",
              "lost": "red"}.get(state, "yellow")
    parts = [f"[b {colour}]{state}[/]"]
    if info.message and state.is_failure:
        parts.append(f"[red]{escape(info.message)}[/]")
    parts += [
        f"{num(info.tokens_per_s, ',.0f')} tok/s",
        f"VRAM {num(info.vram_peak_gb, '.1f')} GB",
        f"ETA {duration(info.eta_s)}",
        f"ckpt {Path(info.last_checkpoint).name if info.last_checkpoint else '—'}",
    ]
    if info.is_remote:  # the newest checkpoint copied here whole and verified: what a lost box leaves (#17)
        parts.append(f"safe here {Path(info.home_checkpoint).name if info.home_checkpoint else '—'}")
    if state == runs.RunState.LOST:
        parts.append(f"[red]its box is gone: R recovers it (`zelda-tui train recover {escape(info.name)}`)[/]")
    if info.spent_usd is not None:
        parts.append(f"${info.spent_usd:,.2f} spent ({escape(info.instance or '—')})")
    if info.message and not state.is_failure:
        parts.append(escape(info.message))
    if info.evals:  # the box evaluating its checkpoints ([eval] during_training or `e`)
        parts.append(escape(info.evals))
    return " · ".join(parts) + (f"\n{link}" if link else "")  # the connection on a line of its own


@dataclass
class Follow:
    """The tails of one selected run; replaced (never rewound) when the selection changes."""

    gen: int
    run_dir: Path
    log: runs.LineTail
    metrics: runs.LineTail
    skip_first: bool = False  # started mid-file: the first line read is a fragment

    @classmethod
    def start(cls, gen: int, run_dir: Path) -> "Follow":
        log_path = run_dir / runs.TRAIN_LOG
        try:
            size = os.path.getsize(log_path)
        except OSError:
            size = 0
        offset = max(0, size - REPLAY_BYTES)
        return cls(gen, run_dir, runs.LineTail(log_path, offset=offset), runs.LineTail(run_dir / runs.METRICS),
                   skip_first=offset > 0)


class RunsScreen(ExportsFromScreen, Screen):
    CSS_PATH = "runs.tcss"
    BINDINGS = [
        Binding("n", "new_run", "New", id="runs.new", tooltip="Start a training run on a phase or a mix"),
        Binding("s", "stop", "Stop", id="runs.stop", tooltip="Stop the selected run (SIGTERM: checkpoint, then exit)"),
        Binding("r", "resume", "Resume", id="runs.resume", tooltip="Start a stopped or died run again from its latest checkpoint"),
        Binding("f", "follow", "Follow", id="runs.follow", tooltip="Focus the log and follow new lines (again: back to the table)"),
        Binding("g", "fetch", "Fetch", id="runs.fetch", tooltip="Remote run: bring lora_adapters/ and the latest checkpoint home"),
        Binding("b", "backup", "Backup", id="runs.backup", tooltip="Remote run: the box rsyncs lora_adapters/ to [backup] host:path", show=False),
        Binding("D", "destroy", "Destroy instance", id="runs.destroy", tooltip="Remote run: destroy the tracked instance it runs on", show=False),
        Binding("R", "recover", "Recover", id="runs.recover", tooltip="Lost remote run: go on elsewhere from its newest checkpoint safe here (the plan and its cost first)", show=False),
        Binding("x", "export", "Export", id="runs.export", tooltip="Export a checkpoint of the selected run: merged into its base, GGUF if asked, each verified by running it"),
        Binding("y", "copy('name')", "Copy name", id="runs.copy", tooltip="Copy the selected run's name to the clipboard (OSC 52)", show=False),
        Binding("Y", "copy('path')", "Copy path", id="runs.copy_path", tooltip="Copy the selected run's directory to the clipboard (OSC 52)", show=False),
    ]

    class Link(Message):
        """The selected remote run's connection changed (connected, reconnecting, ...)."""

        def __init__(self, gen: int, text: str, state: str) -> None:
            super().__init__()
            self.gen, self.text, self.state = gen, text, state

    class Listed(Message):
        def __init__(self, seq: int, infos: list[RunView], instances: list[InstanceRow],
                     stays: dict[str, list[BoxStay]]) -> None:
            super().__init__()
            self.seq, self.infos, self.instances, self.stays = seq, infos, instances, stays

    class TailBatch(Message):
        def __init__(self, gen: int, lines: list[str], metrics: list[dict]) -> None:
            super().__init__()
            self.gen, self.lines, self.metrics = gen, lines, metrics

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.infos: dict[str, RunView] = {}
        self.selected: str | None = None
        self.follow: Follow | None = None
        self._gen = 0
        self._list_seq = 0
        self._list_applied = 0
        self._list_worker: Worker | None = None
        self._list_failed = False
        self._tail_worker: Worker | None = None
        self._mirror_stop: threading.Event | None = None
        self.link: str | None = None  # the selected remote run's connection, as shown in the summary
        self.followed: tuple[str, str | None] | None = None  # (host, remote dir) the follow started on
        self.stays: dict[str, list[BoxStay]] = {}  # the boxes of recovered runs
        self.recovering: dict[str, str] = {}  # run -> the recovery's latest step (the summary shows it)
        self.exporting: dict[tuple[str, str], str] = {}  # (run, checkpoint) -> its export's latest progress line
        self._export_cancel = threading.Event()  # set when the screen goes (the app quits): exports are terminated
        self.ready = False  # True once the first runs list is on screen

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("Reading runs…", id="runs-summary", classes="summary")
        yield Static("", id="runs-boxes")
        yield Static(EMPTY_HINT, id="runs-empty", classes="hint")
        yield Static("", id="runs-instances")
        with Horizontal(id="runs-detail"):
            yield LossChart(id="runs-chart")
            yield LogView(id="runs-log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Runs"
        self._widths = fill_table(self.query_one(DataTable), COLUMNS, [], [], self.app.size.width)
        self.query_one("#runs-chart", LossChart).border_title = "loss · eval"
        self.query_one("#runs-log", LogView).border_title = "train.log"
        self.set_interval(LIST_EVERY_S, self._tick_list)
        self.set_interval(TAIL_EVERY_S, self._tick_tail)
        self.refresh_list()

    def on_screen_resume(self) -> None:
        if self.ready:
            self.refresh_list()

    # --- the runs list -----------------------------------------------------------------
    def _tick_list(self) -> None:
        if self.is_current and (self._list_worker is None or self._list_worker.is_finished):
            self.refresh_list()

    def refresh_list(self) -> None:
        self._list_seq += 1
        self._list_worker = self._list_runs(self._list_seq)

    @work(thread=True, group="runs-list", exit_on_error=False)
    def _list_runs(self, seq: int) -> None:
        try:
            infos = self.services.runs.list_all()
            # tracked GPU instances: SQLite every time, the provider (state, SSH endpoint) every ~30 s
            instances = [r for r in self.services.instances.rows(refresh=seq % INSTANCES_EVERY == 1) if r.running]
            stays = {i.name: s for i in infos if i.is_remote and (s := self.services.recovery.stays(i))}
        except Exception as exc:  # shown once by the app's one error handler, not every 2 s
            if not self._list_failed:
                self._list_failed = True
                report_from_thread(self, exc, "listing runs failed")
            return
        self._list_failed = False
        self.post_message(self.Listed(seq, infos, instances, stays))

    @on(Listed)
    def _listed(self, msg: Listed) -> None:
        if msg.seq < self._list_applied:
            return  # an older list finishing late
        self._list_applied = msg.seq
        table = self.query_one(DataTable)
        names = [info.name for info in msg.infos]
        self.infos = {info.name: info for info in msg.infos}
        self.stays = msg.stays
        self.set_class(not names, "-empty")
        rows = [row_cells(info) for info in msg.infos]
        widths = table_widths(table, COLUMNS, rows, self.app.size.width)
        if names == [row.key.value for row in table.ordered_rows] and widths == self._widths:
            for name, row in zip(names, rows):  # in place: no flicker, the cursor stays
                for key, value in zip(widths, shown_cells(COLUMNS, row, widths)):
                    if table.get_cell(name, key) != value:
                        table.update_cell(name, key, value)
        else:
            self._fill_table(rows, names)
        self._sync_selection()
        self._show_instances(msg.instances)
        self.ready = True

    def _fill_table(self, rows: list[tuple[str, ...]], names: list[str]) -> None:
        table = self.query_one(DataTable)
        self._widths = fill_table(table, COLUMNS, rows, names, self.app.size.width)
        if self.selected in names:
            table.move_cursor(row=names.index(self.selected), animate=False)

    def on_resize(self) -> None:
        if self.ready:
            self._fill_table([row_cells(info) for info in self.infos.values()], list(self.infos))

    def _show_instances(self, instances: list[InstanceRow]) -> None:
        strip = self.query_one("#runs-instances", Static)
        strip.display = bool(instances)
        strip.update("\n".join(instance_line(r) for r in instances))

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._sync_selection()

    def _sync_selection(self) -> None:
        """Follow the run under the cursor (read from the table, so stale events do no harm)."""
        table = self.query_one(DataTable)
        name = None
        if 0 <= table.cursor_row < table.row_count:
            name = table.ordered_rows[table.cursor_row].key.value
        info = self.infos.get(name) if name else None
        if name != self.selected or (info and info.is_remote and self.followed != (info.host, info.remote_dir)):
            self.selected = name  # a new selection, or the run went on on another box: follow it there
            self._start_follow(info)
        self._show_summary()

    def _show_summary(self) -> None:
        summary = self.query_one("#runs-summary", Static)
        info = self.infos.get(self.selected) if self.selected else None
        step = self.recovering.get(info.name) if info else None
        exports = [f"{escape(c)}: {escape(t)}" for (r, c), t in self.exporting.items() if info and r == info.name]
        link = (f"[yellow]⟳ recovering: {escape(step)}[/]" if step
                else f"[yellow]⇩ exporting {' · '.join(exports)}[/]" if exports else self.link)
        summary.update(summary_text(info, link) if info else "")
        boxes = self.query_one("#runs-boxes", Static)
        stays = self.stays.get(info.name) if info else None
        boxes.display = bool(stays)
        boxes.update(boxes_text(stays, time.time()) if stays else "")

    # --- the selected run's tails ------------------------------------------------------
    def _start_follow(self, info: RunView | None) -> None:
        self._gen += 1
        self._stop_mirror()
        self.link = None
        self.followed = (info.host, info.remote_dir) if info else None
        if info and info.remote_dir:
            self._mirror_stop = threading.Event()
            self.link = f"[yellow]⇄ {escape(info.host)}: connecting[/]"
            self._run_mirror(self._gen, info.name, self._mirror_stop)
        self.follow = Follow.start(self._gen, info.run_dir) if info else None
        self.query_one("#runs-log", LogView).reset()
        self.query_one("#runs-chart", LossChart).reset()
        self.query_one("#runs-log", LogView).border_title = f"train.log · {info.name}" if info else "train.log"
        self._tick_tail()

    def _stop_mirror(self) -> None:
        if self._mirror_stop is not None:
            self._mirror_stop.set()
            self._mirror_stop = None

    def on_unmount(self) -> None:
        self._stop_mirror()
        self._export_cancel.set()

    @work(thread=True, group="runs-mirror", exit_on_error=False)
    def _run_mirror(self, gen: int, name: str, stop: threading.Event) -> None:
        """Copy the remote run's logs here until it ends or is deselected; reconnects on its own."""
        def on_state(link) -> None:
            self.post_message(self.Link(gen, link.line(), link.state))

        def on_alert(text: str) -> None:
            self.app.call_from_thread(self.notify, text, title="GPU box", severity="warning", timeout=15)

        try:
            mirror = self.services.runs.mirror(name, on_state=on_state, on_alert=on_alert)
            mirror.follow(stop)
        except Exception as exc:
            report_from_thread(self, exc, f"following {name} failed")

    @on(Link)
    def _link(self, msg: Link) -> None:
        if msg.gen != self._gen:
            return
        colour = {"connected": "green", "stopped": "dim", "failed": "red"}.get(msg.state, "yellow")
        self.link = f"[{colour}]⇄ {escape(msg.text)}[/]"
        self._show_summary()

    def _tick_tail(self) -> None:
        if self.follow is None or not self.is_current:
            return
        if self._tail_worker is not None and not self._tail_worker.is_finished:
            return  # one reader at a time: a LineTail is never read by two threads
        self._tail_worker = self._read_tails(self.follow)

    @work(thread=True, group="runs-tail", exit_on_error=False)
    def _read_tails(self, follow: Follow) -> None:
        try:
            lines = follow.log.read_new()
            metrics = runs.parse_metrics(follow.metrics.read_new())
        except OSError as exc:
            report_from_thread(self, exc, f"reading {follow.run_dir.name} failed")
            return
        if follow.skip_first and lines:
            lines, follow.skip_first = lines[1:], False
        if lines or metrics:
            self.post_message(self.TailBatch(follow.gen, lines[-MAX_LINES:], metrics))

    @on(TailBatch)
    def _tail_batch(self, msg: TailBatch) -> None:
        if self.follow is None or msg.gen != self.follow.gen:
            return  # read for a run that is no longer selected
        if msg.lines:
            self.query_one("#runs-log", LogView).append(msg.lines)
        if msg.metrics:
            self.query_one("#runs-chart", LossChart).add_metrics(msg.metrics)

    # --- actions -----------------------------------------------------------------------
    def selected_info(self) -> RunView | None:
        info = self.infos.get(self.selected) if self.selected else None
        if info is None:
            self.notify("no run selected", severity="warning")
        return info

    def action_stop(self) -> None:
        info = self.selected_info()
        if info is None:
            return
        if not info.state.is_stoppable:
            self.notify(f"{info.name} is {info.state}: nothing to stop", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._stop(str(info.run_dir), info.name)

        self.app.push_screen(
            ConfirmDialog(f"Stop {info.name}?", "The trainer saves a checkpoint, then exits.\n"
                          "Resume it later with r.", yes="Stop"),
            answered,
        )

    @work(thread=True, group="runs-stop", exit_on_error=False)
    def _stop(self, run_dir: str, name: str) -> None:
        """On a worker: a remote run's stop is an SSH round trip (a connect timeout, when the box is gone)."""
        try:
            pid = self.services.runs.stop(run_dir)
        except Exception as exc:
            report_from_thread(self, exc, "stop failed")
            return
        self.app.call_from_thread(self.notify, f"SIGTERM sent to pid {pid}: it saves a checkpoint, then exits",
                                  title=f"Stopping {name}")
        self.app.call_from_thread(self.refresh_list)

    def action_resume(self) -> None:
        info = self.selected_info()
        if info is None:
            return
        self._resume(str(info.run_dir), info.name)

    @work(thread=True, group="runs-resume", exit_on_error=False)
    def _resume(self, run_dir: str, name: str) -> None:
        try:
            resumed = self.services.runs.resume(run_dir)
        except Exception as exc:
            report_from_thread(self, exc, "resume failed")
            return
        self.app.call_from_thread(self.notify, resumed.line(), title="Resumed")
        self.app.call_from_thread(self.refresh_list)

    def action_new_run(self) -> None:
        cfg = self.services.config

        def chosen(choice: tuple[str | None, int | None, str | None] | None) -> None:
            if choice is not None:
                self._start(*choice)

        try:
            hosts = self.services.runs.remote_hosts()
        except ZeldaError as exc:
            zelda_app(self).report_error(exc, "reading [remote] failed")
            hosts = []
        self.app.push_screen(StartRunDialog(cfg.phases, list(cfg.mixes), hosts), chosen)

    @work(thread=True, group="runs-start", exit_on_error=False)
    def _start(self, mix: str | None, phase: int | None, host: str | None = None, accept: str | bool = False) -> None:
        def progress(text: str) -> None:
            self.app.call_from_thread(self.notify, text, title=f"Starting on {host}", timeout=4)

        try:
            if host:
                run_dir = self.services.runs.start_remote(host, mix, phase, accept, progress)
            else:
                run_dir = self.services.runs.start(mix, phase)
        except UnknownHostKey as exc:
            self.app.call_from_thread(self._ask_host_key, exc, mix, phase, host)
            return
        except Exception as exc:
            report_from_thread(self, exc, "start failed")
            return
        self.app.call_from_thread(self.notify, f"{run_dir.name} started" + (f" on {host}" if host else ""),
                                  title="Run started")
        self.app.call_from_thread(self.refresh_list)

    def _ask_host_key(self, exc: UnknownHostKey, mix: str | None, phase: int | None, host: str) -> None:
        """Never trust a new host key silently: show its fingerprint; yes accepts exactly that key."""
        def answered(yes: bool | None) -> None:
            if yes:
                self._start(mix, phase, host, exc.fingerprint)

        self.app.push_screen(ConfirmDialog(
            f"Trust the host key of {escape(host)}?",
            f"{exc.host.label} is not in known_hosts yet.\n\n{exc.key_type} key fingerprint:\n{exc.fingerprint}\n\n"
            "Accept only if this is the box you rented (compare with the provider's console).", yes="Trust"), answered)

    def action_fetch(self) -> None:
        info = self.selected_info()
        if info is None:
            return
        if not info.remote_dir:
            self.notify(f"{info.name} ran here: its adapters are already in {info.run_dir}", severity="warning")
            return
        self._fetch(info.name)

    @work(thread=True, group="runs-fetch", exit_on_error=False)
    def _fetch(self, name: str) -> None:
        def progress(text: str) -> None:
            self.app.call_from_thread(self.notify, text, title=f"Fetching {name}", timeout=3)

        try:
            try:
                got = self.services.runs.fetch(name, "latest", progress)
            except NoCheckpoints:
                got = self.services.runs.fetch(name, "none", progress)
        except Exception as exc:
            report_from_thread(self, exc, "fetch failed")
            return
        self.app.call_from_thread(self.notify, f"{', '.join(got.fetched)} → {got.into} "
                                  f"({got.bytes / 1e6:.1f} MB moved)", title="Fetched")

    def action_backup(self) -> None:
        info = self.selected_info()
        if info is None:
            return
        if not info.remote_dir:
            self.notify(f"{info.name} ran here: back up {info.run_dir} with your usual tools", severity="warning")
            return
        self._backup(info.name)

    @work(thread=True, group="runs-backup", exit_on_error=False)
    def _backup(self, name: str) -> None:
        try:
            done = self.services.runs.backup(name)
        except Exception as exc:
            report_from_thread(self, exc, "backup failed")
            return
        self.app.call_from_thread(self.notify, f"lora_adapters/ of {name} → {done.target}", title="Backed up")

    def action_destroy(self) -> None:
        info = self.selected_info()
        if info is None:
            return
        if not info.instance:
            self.notify(f"{info.name}: no tracked instance behind host {info.host}", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._destroy(info.instance)

        self.app.push_screen(ConfirmDialog(
            f"Destroy {info.instance}?", f"The GPU box of {info.name} ({info.host}) is deleted with its disk; "
            f"${info.spent_usd:,.2f} spent so far.\nFetch the adapters first (g) if you need them.", yes="Destroy"),
            answered)

    @work(thread=True, group="runs-destroy", exit_on_error=False)
    def _destroy(self, key: str) -> None:
        try:
            done = self.services.instances.destroy(key)
        except Exception as exc:
            report_from_thread(self, exc, "destroy failed")
            return
        self.app.call_from_thread(self.notify, f"{key} destroyed (${done.spent_usd or 0:,.2f} in all)", title="Destroyed")
        self.app.call_from_thread(self.refresh_list)

    def action_recover(self) -> None:
        """#17: a lost run's plan (checkpoint, offer, $/h, estimated total, budget left) in a confirm whose
        default is No; a refused plan is a notice with its numbers."""
        info = self.selected_info()
        if info is None:
            return
        if not info.is_remote or info.state != runs.RunState.LOST:
            self.notify(f"{info.name} is {info.state}: R recovers a remote run whose box is gone", severity="warning")
            return
        if info.name in self.recovering:
            self.notify(f"{info.name} is being recovered: {self.recovering[info.name]}", severity="warning")
            return
        self._plan_recovery(info.name)

    @work(thread=True, group="runs-recover", exit_on_error=False)
    def _plan_recovery(self, name: str) -> None:
        try:  # the offers search is a network round trip
            plan = self.services.recovery.plan(name)
        except Exception as exc:
            report_from_thread(self, exc, "recovery plan failed")
            return
        self.app.call_from_thread(self._ask_recovery, plan)

    def _ask_recovery(self, plan: RecoveryPlan) -> None:
        text = "\n".join(plan.lines())
        if plan.problems:
            self.notify(escape(text), title=f"{plan.run} stays lost", severity="error", timeout=30)
            return
        offer = plan.offer.offer.key if plan.offer else None

        def answered(yes: bool | None) -> None:
            if yes:
                self._recover(plan.run, offer)

        self.app.push_screen(ConfirmDialog(
            f"Recover {escape(plan.run)}?", f"{text}\n\nThe offer is rented now and bills until destroyed (D); "
            "the run goes on there from that checkpoint.", yes="Rent and resume"), answered)

    @work(thread=True, group="runs-recover", exit_on_error=False)
    def _recover(self, name: str, offer: str | None) -> None:
        def progress(text: str) -> None:
            self.app.call_from_thread(self._recovery_step, name, text)

        progress("starting")
        try:
            done = self.services.recovery.recover(name, offer=offer, progress=progress)
        except Exception as exc:
            report_from_thread(self, exc, f"recovering {name} failed")
            return
        finally:
            self.app.call_from_thread(self._recovery_step, name, None)
        self.app.call_from_thread(self.notify, done.line(), title="Recovered", timeout=15)
        self.app.call_from_thread(self.refresh_list)

    def _recovery_step(self, name: str, text: str | None) -> None:
        if text is None:
            self.recovering.pop(name, None)
        else:
            self.recovering[name] = text
        self._show_summary()

    def action_export(self) -> None:
        info = self.selected_info()
        if info is None:
            return
        latest = Path(info.last_checkpoint).name if info.last_checkpoint else None
        self._prepare_export(info.name, info.state == runs.RunState.COMPLETED, latest)

    @work(thread=True, group="runs-export", exit_on_error=False)
    def _prepare_export(self, name: str, completed: bool, latest: str | None) -> None:
        """Which checkpoint the dialog offers: `best` needs the run's eval scores (a database read)."""
        try:
            scored = any(r.run == name and not r.is_base for r in self.services.evals.leaderboard().rows)
        except Exception as exc:
            report_from_thread(self, exc, "reading eval results failed")
            scored = False
        self.app.call_from_thread(self._ask_export, name, default_checkpoint(scored, completed, latest))

    def _exports_changed(self) -> None:
        self._show_summary()

    def action_follow(self) -> None:
        log = self.query_one("#runs-log", LogView)
        if log.has_focus:
            self.query_one(DataTable).focus()
            return
        log.focus()
        log.follow()

    def action_copy(self, what: str) -> None:
        info = self.selected_info()
        if info is None:
            self.notify("no run selected", severity="warning")
            return
        zelda_app(self).copy_text(info.name if what == "name" else str(info.run_dir), f"run {what}")

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("New run", "Runs: start a training run on a phase or a mix", self.action_new_run)
        yield SystemCommand("Stop run", "Runs: stop the selected run (checkpoint, then exit)", self.action_stop)
        yield SystemCommand("Resume run", "Runs: start the selected run again from its checkpoint", self.action_resume)
        yield SystemCommand("Follow log", "Runs: focus the train.log pane and follow it", self.action_follow)
        yield SystemCommand("Refresh runs", "Runs: read the runs list now", self.refresh_list)
        yield SystemCommand("Fetch adapters", "Runs: bring a remote run's lora_adapters/ home", self.action_fetch)
        yield SystemCommand("Backup adapters", "Runs: rsync a remote run's lora_adapters/ to the backup host", self.action_backup)
        yield SystemCommand("Destroy instance", "Runs: destroy the tracked GPU instance of a remote run", self.action_destroy)
        yield SystemCommand("Export checkpoint", "Runs: merge a checkpoint of the selected run into its base (GGUF if asked)", self.action_export)
        yield SystemCommand("Recover run", "Runs: a lost remote run goes on elsewhere (plan and cost first)", self.action_recover)
        yield SystemCommand("Copy run name", "Runs: the selected run's name to the clipboard (OSC 52)", lambda: self.action_copy("name"))
        yield SystemCommand("Copy run path", "Runs: the selected run's directory to the clipboard (OSC 52)", lambda: self.action_copy("path"))
