"""The Runs screen through Pilot at 80x24, over real run directories and a real child process.

Run directories are made with the real run-directory contract (`core.runs`, `RunConfig.save`);
the "running" run is a child Python process that appends to train.log and metrics.jsonl every
50 ms and turns SIGTERM into status "stopped" + exit 0, as the trainer does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from zelda_tui.core import runs
from zelda_tui.core.train_config import DataSection, RunConfig, TrainSection
from zelda_tui.screens.runs import RunsScreen
from zelda_tui.widgets.confirm import ConfirmDialog
from zelda_tui.widgets.log_view import LogView
from zelda_tui.widgets.loss_chart import LossChart

from .pilot_util import settle

SIZE = (80, 24)
REPO = Path(__file__).resolve().parents[2]

FAKE_TRAINER = textwrap.dedent("""\
    import signal, sys, time
    from pathlib import Path
    from zelda_tui.core import runs

    run_dir = Path(sys.argv[-1])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with open(run_dir / runs.TRAIN_LOG, "a", buffering=1) as log:
        step = 0
        while not stop:
            step += 1
            log.write(f"step {step} loss {3.0 / step:.4f}\\n")
            runs.append_metric(run_dir, "train", step=step, loss=3.0 / step, tokens_per_s=1234.5,
                               vram_peak_gb=7.25, eta_s=600.0)
            if step % 4 == 0:
                runs.append_metric(run_dir, "eval", step=step, eval_loss=3.5 / step)
            status = runs.read_status(run_dir)
            if status is not None and status.state == "running":
                status.step = step
                runs.write_status(run_dir, status)
            time.sleep(0.05)
        status = runs.read_status(run_dir)
        status.state, status.message, status.finished = "stopped", "stopped by SIGTERM after a checkpoint", time.time()
        runs.write_status(run_dir, status)
        log.write("stopped cleanly\\n")
    sys.exit(0)
""")


def make_run(ws: Path, name: str, state: str, *, pid: int | None = None, steps: int = 0, log_lines: int = 0,
             mix: str = "small", message: str = "") -> Path:
    run_dir = ws / "runs" / name
    run_dir.mkdir(parents=True)
    RunConfig(name=name, created="2026-01-01T00:00:00Z", train=TrainSection(max_steps=100),
              data=DataSection(mix=mix, phase=0)).save(run_dir)
    runs.write_status(run_dir, runs.RunStatus(state=state, pid=pid, step=steps, max_steps=100, started=time.time(),
                                              message=message))
    for step in range(1, steps + 1):
        runs.append_metric(run_dir, "train", step=step, loss=2.0 / step, tokens_per_s=900.0, vram_peak_gb=5.0)
        if step % 5 == 0:
            runs.append_metric(run_dir, "eval", step=step, eval_loss=2.5 / step)
    with open(run_dir / runs.TRAIN_LOG, "a", encoding="utf-8") as fh:
        fh.writelines(f"{name} line {i}\n" for i in range(log_lines))
    return run_dir


def cells(table: DataTable, column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def wait_for(pilot, condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await pilot.pause()
        await asyncio.sleep(0.05)


def state_of(screen: RunsScreen, name: str) -> str:
    table = screen.query_one(DataTable)
    return str(table.get_cell(name, "state"))


async def select(pilot, screen: RunsScreen, name: str) -> None:
    table = screen.query_one(DataTable)
    rows = [row.key.value for row in table.ordered_rows]
    table.focus()
    table.move_cursor(row=rows.index(name))
    await wait_for(pilot, lambda: screen.selected == name, f"{name} selected")


@pytest.fixture
def live_run(small_ws: Path):
    """A run whose 'trainer' is a real child process; yields (run_dir, Popen)."""
    ws = small_ws.parent
    run_dir = make_run(ws, "tiny_20260103T000000Z", "created")
    # the trainer module and the run dir on its command line, as `train stop` checks before signalling
    proc = subprocess.Popen([sys.executable, "-c", FAKE_TRAINER, "zelda_tui.backends.trainer", str(run_dir)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL)
    status = runs.read_status(run_dir)
    status.state, status.pid = "running", proc.pid
    runs.write_status(run_dir, status)
    yield run_dir, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


async def test_runs_table_live_tail_chart_and_stop(small_ws: Path, live_run, app_for):
    ws = small_ws.parent
    live_dir, proc = live_run
    done_dir = make_run(ws, "tiny_20260102T000000Z", "completed", steps=20, log_lines=30, message="adapters in lora_adapters/")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a reaped pid: nothing runs under it any more
    make_run(ws, "tiny_20260101T000000Z", "running", pid=gone.pid, steps=3, log_lines=2)

    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.title == "Runs"
        table = screen.query_one(DataTable)
        assert cells(table, 0) == ["tiny_20260103T000000Z", "tiny_20260102T000000Z", "tiny_20260101T000000Z"]
        assert cells(table, 1) == ["local"] * 3  # the host column: these ran on this machine
        assert cells(table, 2) == ["running", "completed", "died"]
        assert cells(table, 3) == ["small"] * 3  # mix read from run.toml
        assert cells(table, 4)[1] == "20/100"

        # the live run is selected first: its log follows the file, each line once, in order
        log = screen.query_one(LogView)
        chart = screen.query_one(LossChart)
        await wait_for(pilot, lambda: len(log.lines) >= 10, "live log lines")
        seen = len(log.lines)
        await wait_for(pilot, lambda: len(log.lines) >= seen + 10, "lines appended while the screen is open")
        on_disk = (live_dir / runs.TRAIN_LOG).read_text().splitlines()
        assert list(log.lines) == on_disk[: len(log.lines)]
        assert list(log.lines) == [f"step {i} loss {3.0 / i:.4f}" for i in range(1, len(log.lines) + 1)]
        await wait_for(pilot, lambda: len(chart.series["loss"][0]) >= 8 and len(chart.series["eval"][0]) >= 2, "chart data")
        assert chart.series["loss"][0][:3] == [1, 2, 3]
        assert len(chart.plt.monitor.x) == 2  # two series drawn: loss and eval
        await wait_for(pilot, lambda: "1,234 tok/s" in str(screen.query_one("#runs-summary", Static).render()), "summary")
        summary = str(screen.query_one("#runs-summary", Static).render())
        assert summary.startswith("running") and "VRAM 7.2 GB" in summary and "ETA 10m00s" in summary

        # a finished run replays from the start; the chart holds its whole history
        await select(pilot, screen, "tiny_20260102T000000Z")
        await wait_for(pilot, lambda: len(log.lines) == 30, "finished run replayed")
        assert list(log.lines) == [f"tiny_20260102T000000Z line {i}" for i in range(30)]
        await wait_for(pilot, lambda: len(chart.series["loss"][0]) == 20, "finished chart")
        assert chart.series["eval"] == ([5, 10, 15, 20], [2.5 / s for s in (5, 10, 15, 20)])
        assert "completed" in str(screen.query_one("#runs-summary", Static).render())

        # a line written in two halves shows once, whole, only when its newline lands
        follow = screen.follow
        with open(done_dir / runs.TRAIN_LOG, "a", encoding="utf-8") as fh:
            fh.write("first half + ")
            fh.flush()
            size = fh.tell()
            await wait_for(pilot, lambda: follow.log.offset == size, "half line read")
            await pilot.pause()
            assert len(log.lines) == 30 and "first half" not in log.lines[-1]
            fh.write("second half\nnext line\n")
        await wait_for(pilot, lambda: len(log.lines) == 32, "completed line")
        assert list(log.lines[-2:]) == ["first half + second half", "next line"]

        # a process that is gone shows as died; the summary says it
        await select(pilot, screen, "tiny_20260101T000000Z")
        await wait_for(pilot, lambda: list(log.lines) == ["tiny_20260101T000000Z line 0", "tiny_20260101T000000Z line 1"],
                       "died run log")
        assert str(screen.query_one("#runs-summary", Static).render()).startswith("died")
        await pilot.press("s")  # nothing to stop: no dialog
        await pilot.pause()
        assert app.screen is screen

        # s on the live run asks first; "n" leaves it running, "y" sends SIGTERM
        await select(pilot, screen, "tiny_20260103T000000Z")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "confirm dialog")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen, "dialog closed")
        assert proc.poll() is None
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "confirm dialog")
        await pilot.press("y")
        await wait_for(pilot, lambda: proc.poll() is not None, "trainer exited", timeout=10)
        assert proc.returncode == 0
        await wait_for(pilot, lambda: state_of(screen, "tiny_20260103T000000Z") == "stopped", "state stopped")
        await wait_for(pilot, lambda: log.lines and log.lines[-1] == "stopped cleanly", "last log line")
        on_disk = (live_dir / runs.TRAIN_LOG).read_text().splitlines()
        assert list(log.lines) == on_disk  # every line once, in order, none lost
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_empty_workspace_shows_how_to_start(small_ws: Path, app_for):
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        hint = screen.query_one("#runs-empty", Static)
        assert hint.display and "zelda-tui train start --phase 0" in str(hint.render())
        assert not screen.query_one(DataTable).display
        await pilot.press("s")  # nothing selected: a warning, no crash
        await pilot.pause()
        assert app.screen is screen

        # a run appearing later replaces the hint within a refresh
        make_run(small_ws.parent, "tiny_20260104T000000Z", "stopped", steps=2, log_lines=1)
        await wait_for(pilot, lambda: screen.query_one(DataTable).row_count == 1, "new run listed")
        await wait_for(pilot, lambda: not hint.display and screen.query_one(DataTable).display, "the hint replaced")


async def test_resume_of_a_completed_run_is_refused_with_a_message(small_ws: Path, app_for):
    make_run(small_ws.parent, "tiny_20260106T000000Z", "completed", steps=2)
    make_run(small_ws.parent, "tiny_20260105T000000Z", "failed", steps=1, message="loss is nan at step 1")
    app = app_for(small_ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        await select(pilot, screen, "tiny_20260105T000000Z")
        summary = str(screen.query_one("#runs-summary", Static).render())
        assert summary.startswith("failed") and "loss is nan at step 1" in summary
        await select(pilot, screen, "tiny_20260106T000000Z")
        await pilot.press("r")
        await wait_for(pilot, lambda: app._notifications, "error shown")
        message = [n.message for n in app._notifications][0]
        assert message.startswith("resume failed:") and "already completed" in message


async def test_resume_of_a_run_without_a_checkpoint_says_it_starts_over(small_ws: Path, app_for, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the resumed trainer fails on its absent base model, offline
    run_dir = make_run(small_ws.parent, "tiny_20260107T000000Z", "failed", message="killed before checkpoint-1")
    app = app_for(small_ws)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            await settle(pilot)
            await select(pilot, app.screen, "tiny_20260107T000000Z")
            await pilot.press("r")
            await wait_for(pilot, lambda: app._notifications, "resume reported")
            message = [n.message for n in app._notifications][0]
            assert message == "resumed tiny_20260107T000000Z: it has no complete checkpoint, so it starts over from step 0"
    finally:
        pid = runs.read_status(run_dir).pid
        if pid and runs.pid_alive(pid):
            os.kill(pid, 9)
