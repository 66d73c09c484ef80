"""Training runs, wherever they run: start, list, status, stop, resume, follow, fetch, backup.

Where a run lives is decided once, by `host(ref)` (its SQLite row, or its run dir's `.remote`
marker when the database lost it); stop, resume, sync and fetch then go to that `RunHost`.
A remote run has a local run dir too (runs/<name>/, created exactly as for a local run): the
mirror copies the box's train.log, metrics.jsonl and status.json into it, so everything that
reads runs (tail, Runs screen, eval, leaderboard) reads local files whatever the host.
SQLite indexes runs (host, pid, remote dir); status.json is the truth about the process.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..backends import box_files, remote_runs
from ..backends.checkpoint_sync import last_synced
from ..backends.hosts import BUNDLE_FILES, RunHost, SshHost
from ..backends.ssh_base import RemoteError
from ..core import eval_worker, run_plan, runs
from ..core.config import Config
from ..core.errors import ConfigError, ZeldaError
from ..core.store import Store
from ..core.train_config import load_run_config
from .box_watch import box_watch
from .datasets import DatasetService
from .hosts import Hosts
from .instances import InstanceRegistry
from .run_watch import LostHook, index_state, run_watch
from .views import BackupView, FetchView, RunView

if TYPE_CHECKING:  # paramiko (backends.ssh, remote_tail) loads when a remote step runs, not at app start
    from ..backends.remote_tail import LinesCallback, LinkState, RemoteMirror

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Resumed:
    """What a resume started: the run, and the checkpoint step it continues from (None: step 0)."""

    run_dir: Path
    from_step: int | None

    def line(self) -> str:
        if self.from_step is None:
            return f"resumed {self.run_dir.name}: it has no complete checkpoint, so it starts over from step 0"
        return f"resumed {self.run_dir.name} from checkpoint-{self.from_step}"


@dataclass
class RunService:
    """A run's life as the user drives it; the state machine itself is `core.runs`."""

    config: Config
    store: Store
    datasets: DatasetService
    instances: InstanceRegistry
    hosts: Hosts
    when_lost: LostHook | None = None  # a followed run found lost goes here (build_services: recovery.auto)

    @property
    def runs_root(self) -> Path:
        return self.config.workspace / "runs"

    # --- where a run is ------------------------------------------------------------------
    def dir(self, ref: str) -> Path:
        """A run by name (state database or runs/) or by path."""
        row = self.store.run_row(ref)
        if row:
            return Path(row["run_dir"])
        for candidate in (self.runs_root / ref, Path(ref)):
            if (candidate / runs.RUN_TOML).is_file():
                return candidate.resolve()
        raise ZeldaError(f"no run '{ref}' (see `zelda-tui train list`)", exit_code=2)

    def host(self, ref: str) -> RunHost:
        """Where the run lives. A run dir the database does not know as remote (state.sqlite lost
        or older) but whose `.remote` marker names its host is indexed again from the marker: the
        run dir is the truth."""
        run_dir = self.dir(ref)
        row = self.store.run_row(run_dir.name)
        if row and Hosts.is_remote(row["host"], row.get("remote_dir")):
            return self.hosts.for_run(row["host"], row["remote_dir"])
        marker = runs.read_remote_marker(run_dir)
        if marker is None or marker["host"] == "?":
            return self.hosts.local()
        status = runs.read_status(run_dir) or runs.RunStatus(state=runs.RunState.UNKNOWN)
        mix, phase = _mix_phase(run_dir)
        self.store.run_upsert(run_dir.name, str(run_dir), marker["host"], mix, phase, status.pid, status.state,
                              marker["remote_dir"])
        return self.hosts.for_run(marker["host"], marker["remote_dir"])

    def _remote(self, ref: str) -> tuple[SshHost, dict]:
        """The host and SQLite row of a remote run; a local one is refused."""
        host = self.host(ref)
        if not isinstance(host, SshHost):
            raise ZeldaError(f"{ref} is a local run (this needs a run started with --remote)")
        row = self.store.run_row(self.dir(ref).name)
        assert row is not None  # host() indexed it
        return host, row

    def remote_hosts(self) -> list[str]:
        """Where a run can go: [remote] hosts (ssh aliases), then running tracked instances' SSH endpoints."""
        return list(dict.fromkeys(self.hosts.configured() + self.instances.endpoints()))

    # --- start ---------------------------------------------------------------------------
    def start(self, mix: str | None = None, phase: int | None = None, say: Progress | None = None,
              **overrides: Any) -> Path:
        """Freeze a run (building the mix bundle if it is missing) and start the trainer detached here."""
        from ..backends import runners

        mix_name, phase = run_plan.choose_mix(self.config, mix, phase)
        bundle = self.datasets.mix_ensure(mix_name, say)  # rebuilt, or refused if locked, when it no longer matches config.toml
        cfg = run_plan.plan_run(self.config, mix_name, phase, **overrides)
        runners.check_trainer_stack()  # before a run dir exists or "started" is said
        run_dir = run_plan.create_run(self.config, cfg, bundle, self.runs_root)
        pid = runners.start_local(run_dir, cfg.train.gpus)
        self.store.run_upsert(run_dir.name, str(run_dir), "local", mix_name, phase, pid, runs.RunState.STARTING)
        return run_dir

    def start_remote(self, host: str, mix: str | None = None, phase: int | None = None,
                     accept_new_host_key: bool | str = False, progress: Progress | None = None,
                     **overrides: Any) -> Path:
        """Freeze the run here, prepare the box, upload what changed, start the trainer detached."""
        progress = progress or _quiet
        self.hosts.resolve(host)  # a bad host or port is a usage error before anything is built
        mix_name, phase = run_plan.choose_mix(self.config, mix, phase)
        bundle = self.datasets.mix_ensure(mix_name, progress)  # rebuilt, or refused if locked, when it no longer matches config.toml
        cfg = run_plan.plan_run(self.config, mix_name, phase, **overrides)
        settings = self.hosts.remote_settings()
        progress(f"{host}: connecting")
        with self.hosts.connect(host, accept_new_host_key) as session:
            code = box_files.code_transfers(settings)  # hashed once: sized here, uploaded below
            need = sum((bundle / f).stat().st_size for f in BUNDLE_FILES) + sum(t.size for t in code[1]) + (1 << 20)
            info = remote_runs.probe(session, settings, cfg.train.device, need, progress)  # before anything is created
            for warning in info.warnings:
                progress(f"warning: {warning}")
            run_dir = run_plan.create_run(self.config, cfg, bundle, self.runs_root)
            remote_dir = settings.dir("models", run_dir.name)
            runs.write_remote_marker(run_dir, host, remote_dir)
            box = self.hosts.ssh(host, remote_dir)
            try:
                pid = box.start(run_dir, progress, session, info.env, code)
            except ZeldaError as exc:
                runs.set_state(run_dir, runs.RunState.FAILED, message=str(exc), host=host)
                self.store.run_upsert(run_dir.name, str(run_dir), host, mix_name, phase, None, runs.RunState.FAILED,
                                      remote_dir)
                raise ZeldaError(f"{exc} — {run_dir.name} is kept; `zelda-tui train resume {run_dir.name}` "
                                 "retries (what arrived is not sent again)", exc.exit_code) from None
            self._indexed_start(run_dir, session.host.alias, pid, remote_dir)
        return run_dir

    def _indexed_start(self, run_dir: Path, host: str, pid: int, remote_dir: str | None) -> None:
        data = load_run_config(run_dir).data
        self.store.run_upsert(run_dir.name, str(run_dir), host, data.mix, data.phase, pid, runs.RunState.STARTING,
                              remote_dir)

    # --- stop / resume -------------------------------------------------------------------
    def stop(self, ref: str) -> int:
        """SIGTERM to the run's trainer where it runs (it saves a checkpoint, then exits); its pid."""
        return self.host(ref).stop(self.dir(ref))

    def resume(self, ref: str, progress: Progress | None = None) -> Resumed:
        """Start the trainer again in an existing run dir: it continues from the latest complete checkpoint."""
        host = self.host(ref)
        run_dir = self.dir(ref)
        if not host.is_remote:
            info = self.info(run_dir)
            state = info.state
            if state.has_process:
                raise ZeldaError(f"{run_dir.name} is still {state} (pid {info.pid})")
            if state == runs.RunState.COMPLETED:
                raise ZeldaError(f"{run_dir.name} already completed")
        pid, from_step = host.resume(run_dir, progress or _quiet)
        if host.is_remote:
            self._indexed_start(run_dir, host.name, pid, host.remote_dir)
        else:
            row = self.store.run_row(run_dir.name) or {"mix": "", "phase": None}
            self.store.run_upsert(run_dir.name, str(run_dir), "local", row["mix"], row["phase"], pid,
                                  runs.RunState.STARTING)
        return Resumed(run_dir, from_step)

    # --- what runs there are ---------------------------------------------------------------
    def list_all(self) -> list[RunView]:
        """Every known run with its live state from status.json (a dead process shows as 'died')."""
        seen = {}
        for row in self.store.run_rows():
            seen[row["name"]] = row
        if self.runs_root.is_dir():
            for d in sorted(self.runs_root.iterdir()):
                if d.name not in seen and (d / runs.RUN_TOML).is_file():
                    mix, phase = _mix_phase(d)  # a run dir the database does not know (copied in, or an older state.sqlite)
                    marker = runs.read_remote_marker(d)  # a remote run's copy says so itself
                    seen[d.name] = {"name": d.name, "run_dir": str(d), "host": marker["host"] if marker else "local",
                                    "remote_dir": marker["remote_dir"] if marker else None, "mix": mix, "phase": phase}
        infos = [self.info(Path(r["run_dir"]), r) for r in sorted(seen.values(), key=lambda r: r["name"], reverse=True)]
        for info in infos:
            if info.state == runs.RunState.COMPLETED and not self.store.throughput_has(info.name):
                self._record_throughput(info.run_dir)
        return infos

    def _record_throughput(self, run_dir: Path) -> None:
        """A completed GPU run's median tokens/s goes into the state database for the estimator."""
        metrics = runs.read_metrics(run_dir)
        hw = next((m for m in metrics if m.get("event") == "hardware"), None)
        rates = sorted(m["tokens_per_s"] for m in metrics if m.get("event") == "train" and m.get("tokens_per_s"))[1:]
        if not hw or hw.get("device") != "cuda" or not rates:
            return
        cfg = load_run_config(run_dir)
        self.store.throughput_save(run_dir.name, cfg.model.base, hw["gpu"], int(hw["gpus"]), rates[len(rates) // 2],
                                   int(hw["seq_len"]), int(hw["micro_batch"]), metrics[-1]["t"])

    def info(self, run_dir: Path, row: dict | None = None) -> RunView:
        """A run's state and latest metrics from its (local, or locally mirrored) run dir.

        A local process is checked directly; a remote one is as of the last sync of the mirror
        (`synced_at`), and "died" once a sync found its process gone.
        """
        row = row or self.store.run_row(run_dir.name) or {}
        remote = Hosts.is_remote(row.get("host"), row.get("remote_dir"))
        host = self.hosts.for_run(row.get("host"), row.get("remote_dir"))
        found = runs.read_status(run_dir)
        status = found or runs.RunStatus(state=runs.RunState.UNKNOWN)
        state = runs.observed_state(found, lambda: host.alive(status, row.get("state")),
                                    box_lost=remote and self._box_lost(row, found))
        metrics = runs.read_metrics(run_dir)
        last_train: dict = next((m for m in reversed(metrics) if m.get("event") == "train"), {})
        last_eval: dict = next((m for m in reversed(metrics) if m.get("event") == "eval"), {})
        instance, spent = self._instance_spend(row["host"]) if remote else (None, None)
        return RunView(
            name=run_dir.name, run_dir=run_dir, host=row.get("host", "local"), mix=row.get("mix", ""),
            phase=row.get("phase"), state=runs.RunState(state), pid=status.pid, step=status.step,
            max_steps=status.max_steps, loss=last_train.get("loss"), eval_loss=last_eval.get("eval_loss"),
            tokens_per_s=last_train.get("tokens_per_s"), vram_peak_gb=last_train.get("vram_peak_gb"),
            eta_s=last_train.get("eta_s") if state == runs.RunState.RUNNING else None,
            heartbeat=status.heartbeat, finished=status.finished, last_checkpoint=status.last_checkpoint,
            best_checkpoint=status.best_checkpoint, message=status.message,
            remote_dir=row.get("remote_dir") if remote else None,
            synced_at=_mtime(run_dir / runs.STATUS) if remote else None, instance=instance, spent_usd=spent,
            home_checkpoint=last_synced(run_dir) if remote else None, evals=eval_worker.worker_line(run_dir),
        )

    def _box_lost(self, row: dict, status: runs.RunStatus | None) -> bool:
        """A run not finished whose box a mirror found unreachable for [recovery] lost_after_minutes, or
        whose tracked instance the provider said is gone or stopped (#17.2)."""
        if status is not None and not runs.RunState.of(status.state).is_live:
            return False
        return row.get("state") == runs.RunState.LOST or self.instances.box_gone(row["host"]) is not None

    def _instance_spend(self, host: str) -> tuple[str | None, float | None]:
        """The tracked instance behind a remote run's host, and what it has cost so far."""
        inst = self.instances.for_host(host) or self.instances.box_gone(host)  # a gone one: its final spend
        if inst is None:
            return None, None
        return inst.key, round(inst.cost(time.time()), 2)

    def box(self, view: RunView) -> str | None:
        """What the start probe found on a remote run's box (its box.json): GPUs, driver, the environment."""
        from ..backends import box_env

        return box_env.summary(view.run_dir)

    def status(self, ref: str) -> RunView:
        """`train status`: a remote run is synced first and its process asked over SSH."""
        host = self.host(ref)
        run_dir = self.dir(ref)
        if not host.is_remote:
            return self.info(run_dir)
        try:
            host.sync(run_dir)
        except RemoteError as exc:  # the box does not answer: lost, once long enough or the provider says so
            return self._unreachable(run_dir, exc)
        row = self.store.run_row(run_dir.name) or {}
        status = runs.read_status(run_dir)
        if row.get("state") == runs.RunState.LOST:  # it answers again
            index_state(self.store, row["name"], runs.RunState.of(status.state) if status else runs.RunState.UNKNOWN)
        if status and runs.RunState.of(status.state).has_process:
            pid = status.pid or row["pid"]
            asked = runs.RunStatus(state=status.state, pid=pid)
            self.store.run_upsert(row["name"], row["run_dir"], row["host"], row["mix"], row["phase"], pid,
                                  runs.observed_state(status, lambda: host.alive(asked, ask=True)), row["remote_dir"])
        return self.info(run_dir, self.store.run_row(run_dir.name))

    def _unreachable(self, run_dir: Path, exc: RemoteError) -> RunView:
        """`train status` of a run whose box does not answer: `lost` when the provider says its instance
        is gone or the last sync is older than [recovery] lost_after_minutes (a live run's status.json
        changes with every heartbeat); otherwise the connection error, as before."""
        row = self.store.run_row(run_dir.name) or {}
        status = runs.read_status(run_dir)
        if status is not None and not runs.RunState.of(status.state).is_live:
            raise exc
        synced = _mtime(run_dir / runs.STATUS)
        quiet_s = time.time() - synced if synced is not None else float("inf")
        gone = self.instances.box_gone(row.get("host", ""), ask=True)
        if gone is None and quiet_s < self.config.recovery.lost_after_minutes * 60:
            raise exc
        index_state(self.store, run_dir.name, runs.RunState.LOST)
        return self.info(run_dir, self.store.run_row(run_dir.name))

    # --- a remote run's files ----------------------------------------------------------------
    def mirror(self, ref: str, on_lines: LinesCallback | None = None,
               on_state: Callable[[LinkState], None] | None = None, poll_s: float = 0.1,
               on_alert: Callable[[str], None] | None = None) -> RemoteMirror:
        """The follower of a remote run; with on_alert it also watches GPU idleness and disk on the box."""
        host, row = self._remote(ref)
        tick, every = (box_watch(self.config, self.instances, self.hosts.remote_settings(), row["host"], on_alert)
                       if on_alert else (None, 60.0))
        watch = run_watch(self.config, self.store, self.instances, host, row, on_lines, on_state, on_alert,
                          self.when_lost)  # #17
        return host.mirror(Path(row["run_dir"]), watch.lines, watch.state, poll_s, tick, every)

    def fetch(self, ref: str, checkpoints: str = "none", progress: Progress | None = None) -> FetchView:
        """lora_adapters/ (and chosen checkpoints: "none", "all", "latest" or "N,M") into the local run dir."""
        host, row = self._remote(ref)
        run_dir = Path(row["run_dir"])
        got = host.fetch(run_dir, checkpoints, progress or _quiet)
        return FetchView(run=row["name"], fetched=got.fetched, bytes=got.bytes, into=str(run_dir))

    def backup(self, ref: str) -> BackupView:
        """rsync lora_adapters/ from the GPU box to [backup] host:path/<run>/ (the box needs access there)."""
        host, row = self._remote(ref)
        b = self.config.backup
        if not b.host or not b.path:
            raise ConfigError(f"{self.config.path} [backup]: set host (an ssh alias the GPU box can reach) and path")
        target = f"{b.host}:{posixpath.join(b.path, row['name'], runs.ADAPTERS)}"
        return BackupView(run=row["name"], target=target, bytes=host.backup(target, b.rsync_ssh))


def _mix_phase(run_dir: Path) -> tuple[str, int | None]:
    """The mix and phase a run dir's run.toml says (("", None) when it cannot be read)."""
    try:
        data = load_run_config(run_dir).data
    except ZeldaError:
        return "", None
    return data.mix, data.phase


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
