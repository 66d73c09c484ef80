"""A run's life in one place (core.runs): its states, which may follow which, and when it "died"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zelda_tui.backends import runners
from zelda_tui.core import runs
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.runs import RunState


def run_dir_in(tmp_path: Path, state: str | None, pid: int | None = None) -> Path:
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    if state is not None:
        (run_dir / runs.STATUS).write_text(json.dumps({"state": state, "pid": pid}))
    return run_dir


def test_every_state_has_its_questions_answered():
    assert [s for s in RunState if s.is_live] == ["created", "starting", "running", "stopping"]
    assert [s for s in RunState if s.is_stoppable] == ["starting", "running"]
    assert [s for s in RunState if s.is_failure] == ["failed", "died", "lost"]
    assert RunState.of("no such state") is RunState.UNKNOWN and RunState.of(None) is RunState.UNKNOWN


def test_a_completed_run_is_never_started_again(tmp_path: Path):
    """The runner asks the run's life before it starts a process: nothing is spawned, status.json stays."""
    run_dir = run_dir_in(tmp_path, "completed")
    with pytest.raises(ZeldaError, match="a completed run cannot become starting"):
        runners.start_local(run_dir, python=sys.executable)
    assert runs.read_status(run_dir).state == "completed"
    assert not (run_dir / runs.TRAIN_LOG).exists()


def test_a_stopped_or_died_run_may_start_again(tmp_path: Path):
    """A resume after `kill -9`: status.json still says running; starting again is allowed."""
    run_dir = run_dir_in(tmp_path, "running", pid=999_999_999)
    status = runs.set_state(run_dir, RunState.STARTING, pid=42)
    assert (status.state, status.pid) == ("starting", 42)
    assert json.loads((run_dir / runs.STATUS).read_text())["state"] == "starting"


def test_observed_states_are_never_written(tmp_path: Path):
    run_dir = run_dir_in(tmp_path, None)
    for observed in (RunState.DIED, RunState.LOST, RunState.UNKNOWN):
        with pytest.raises(ValueError):
            runs.write_status(run_dir, runs.RunStatus(state=observed))
    assert not (run_dir / runs.STATUS).exists()


def test_died_is_decided_from_the_process_only_while_one_should_run(tmp_path: Path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    asked = []

    def alive() -> bool:
        asked.append(1)
        return runs.pid_alive(gone.pid)

    assert runs.observed_state(runs.RunStatus(state="running", pid=gone.pid), alive) is RunState.DIED
    assert runs.observed_state(runs.RunStatus(state="stopping", pid=gone.pid), alive) is RunState.DIED
    assert len(asked) == 2
    for state in ("created", "stopped", "completed", "failed"):  # no process expected: nothing asked
        assert runs.observed_state(runs.RunStatus(state=state), alive) == state
    assert len(asked) == 2
    assert runs.observed_state(None, alive) is RunState.UNKNOWN
    assert runs.observed_state(runs.RunStatus(state="running"), lambda: True) is RunState.RUNNING


def test_a_run_whose_box_is_gone_is_lost_never_silently_died(tmp_path: Path):
    """#17.2: lost is observed like died, and wins over it: the process is gone because its box is."""
    asked = []

    def alive() -> bool:
        asked.append(1)
        return False

    for state in ("created", "starting", "running", "stopping"):
        assert runs.observed_state(runs.RunStatus(state=state), alive, box_lost=True) is RunState.LOST
    assert not asked  # the box is gone: nobody asks it about the process
    for state in ("stopped", "completed", "failed"):  # ended before the box went: they stay what they were
        assert runs.observed_state(runs.RunStatus(state=state), alive, box_lost=True) == state
    assert runs.observed_state(runs.RunStatus(state="running"), alive) is RunState.DIED
    assert RunState.LOST.is_failure and not RunState.LOST.is_live
