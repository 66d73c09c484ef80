"""What rides along a remote run's mirror (#17): its checkpoints come home as they land, and a
box that stays unreachable (or that its provider says is gone) makes the run `lost`.

The mirror tells its link's state and the new lines it copied; this watch starts a checkpoint
copy when the trainer logs a `checkpoint` event or the link comes up, and decides "lost" from
how long the link has been down ([recovery] lost_after_minutes) or from the provider's answer
about the tracked instance behind the host (asked at most once a minute while the link is down).
"Lost" is indexed in state.sqlite (like "died"), never written into status.json; the box
answering again clears it. A run found lost is handed to `when_lost` (`[recovery] auto`: it goes on
elsewhere without asking, see services.recovery), on the follower's thread: the box is gone anyway.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..backends.hosts import SshHost
from ..core import runs
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.link_watch import LinkWatch
from ..core.store import Store
from ..core.train_config import load_run_config
from .instances import InstanceRegistry

if TYPE_CHECKING:  # paramiko loads when a remote step runs, not at app start
    from ..backends.checkpoint_sync import CheckpointSync
    from ..backends.remote_tail import LinesCallback, LinkState

Alert = Callable[[str], None]
LostHook = Callable[[str, Alert], object]  # (run, alert): what to do with a run found lost
ASK_PROVIDER_EVERY_S = 60.0
FINAL_COPY_WAIT_S = 3600.0  # a run that ended: its last checkpoint is worth waiting for


def _quiet(_: str) -> None:
    pass


def index_state(store: Store, name: str, state: runs.RunState) -> None:
    """Record an observed state of a run in its SQLite row (what `info` reads back as the box's word)."""
    row = store.run_row(name)
    if row is not None:
        store.run_upsert(row["name"], row["run_dir"], row["host"], row["mix"], row["phase"], row["pid"], state,
                         row.get("remote_dir"))


def backup_target(config: Config, run: str) -> tuple[str, str] | None:
    """([backup] host:path/<run>, rsync -e) when [backup] is set: checkpoints go there too."""
    b = config.backup
    return (f"{b.host}:{posixpath.join(b.path, run)}", b.rsync_ssh) if b.host and b.path else None


@dataclass
class RunWatch:
    store: Store
    instances: InstanceRegistry
    run: str
    host: str
    run_dir: Path
    link: LinkWatch
    sync: CheckpointSync | None = None
    on_lines: LinesCallback | None = None
    on_state: Callable[[LinkState], None] | None = None
    alert: Alert = _quiet
    when_lost: LostHook | None = None
    lost: bool = False
    _asked_at: float = field(default=0.0, repr=False)

    def lines(self, name: str, new: list[str]) -> None:
        if self.sync is not None and name == runs.METRICS and any(
                m.get("event") == "checkpoint" for m in runs.parse_metrics(new)):
            self.sync.wanted()
        if self.on_lines is not None:
            self.on_lines(name, new)

    def state(self, link: LinkState) -> None:
        now = time.time()
        if link.state == "connected":
            self.link.up(now)
            if self.sync is not None:
                self.sync.wanted()  # whatever landed while nobody followed
            self._found_again()
        elif link.state == "reconnecting":
            self._check_lost(now)
        elif link.state in ("stopped", "failed") and self.sync is not None:
            status = runs.read_status(self.run_dir)
            ended = link.state == "stopped" and status is not None and not runs.RunState.of(status.state).is_live
            self.sync.close(FINAL_COPY_WAIT_S if ended else 0.0)
        if link.state == "failed" and link.gone:  # the box answers, but the run is not there any more
            self._lost("its run dir is gone from the box")
        if self.on_state is not None:
            self.on_state(link)

    def _check_lost(self, now: float) -> None:
        if self.lost or self._ended():
            return
        reason = ""
        if self.link.down(now):
            reason = f"no SSH for {self.link.down_for(now) / 60:.1f} min"
        elif now - self._asked_at >= ASK_PROVIDER_EVERY_S:
            self._asked_at = now
            gone = self.instances.box_gone(self.host, ask=True)
            if gone is not None:
                reason = f"{gone.key} is {gone.state} (the provider says so)"
        if reason:
            self._lost(reason)

    def _lost(self, reason: str) -> None:
        """Index the run lost, say so, hand it to `when_lost`; unless it ended before (nothing is lost)."""
        if self.lost or self._ended():
            return
        self.lost = True
        index_state(self.store, self.run, runs.RunState.LOST)
        self.alert(f"{self.run}: its box {self.host} is lost ({reason}); its last checkpoint safe here: "
                   f"{_home(self.run_dir)} — `zelda-tui train recover {self.run}` goes on elsewhere")
        if self.when_lost is not None:
            self.when_lost(self.run, self.alert)

    def _ended(self) -> bool:
        """It ended before the box went (as its last status here says): nothing is lost."""
        status = runs.read_status(self.run_dir)
        return status is not None and not runs.RunState.of(status.state).is_live

    def _found_again(self) -> None:
        row = self.store.run_row(self.run)
        if self.lost or (row is not None and row["state"] == runs.RunState.LOST):
            self.lost = False
            status = runs.read_status(self.run_dir)
            index_state(self.store, self.run, runs.RunState.of(status.state) if status else runs.RunState.UNKNOWN)


def _home(run_dir: Path) -> str:
    from ..backends.checkpoint_sync import last_synced

    return last_synced(run_dir) or "none"


def run_watch(config: Config, store: Store, instances: InstanceRegistry, host: SshHost, row: dict,
              on_lines: LinesCallback | None, on_state: Callable[[LinkState], None] | None,
              alert: Alert | None, when_lost: LostHook | None = None) -> RunWatch:
    """The watch of one followed remote run (its SQLite `row`), as [recovery] and [backup] say."""
    run_dir = Path(row["run_dir"])
    rec = config.recovery
    sync = None
    if rec.sync_checkpoints:
        try:
            keep = load_run_config(run_dir).train.keep_checkpoints
        except ZeldaError:  # an unreadable run.toml: keep the default two
            keep = 2
        sync = host.checkpoint_sync(run_dir, keep, backup_target(config, row["name"]), warn=alert or _quiet)
    return RunWatch(store, instances, row["name"], row["host"], run_dir, LinkWatch(rec.lost_after_minutes * 60), sync,
                    on_lines, on_state, alert or _quiet, when_lost)
