"""Runs on a GPU box over SSH: start, mirror (tail), status, stop, resume, fetch, backup.

A remote run has a local run dir too (runs/<name>/, created exactly as for a local run): it
holds run.toml and data/, and the mirror copies train.log, metrics.jsonl and status.json
into it, so everything that reads runs (tail, Runs screen, eval, leaderboard) reads local
files whatever the host. SQLite records host (the SSH alias), pid and the remote dir.
"""

from __future__ import annotations

import posixpath
import re
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..backends import remote_runs
from ..backends.ssh_base import SshSettings
from ..core import run_plan, runs
from ..core.config import Config
from ..core.errors import ConfigError
from ..core.idle_watch import IdleWatch
from ..core.errors import ZeldaError
from ..core.inventory import Inventory
from ..core.mix import EVAL_SOURCES
from ..core.store import Store
from ..core.train_config import load_run_config
from .runs import Resumed

if TYPE_CHECKING:  # paramiko (backends.ssh, remote_tail) loads when a remote step runs, not at app start
    from ..backends.remote_tail import LinesCallback, LinkState, RemoteMirror
    from ..backends.ssh import SshSession

Progress = Callable[[str], None]
BUNDLE_FILES = ("train.jsonl", "eval.jsonl", EVAL_SOURCES, "metadata.json")


def _quiet(_: str) -> None:
    pass


def _train_requirements() -> tuple[str, ...]:
    """What a venv on the box needs to run the uploaded code: the base requirements and the
    [train] extra's pins (the same versions this install asks for)."""
    try:
        reqs = metadata.requires("zelda-tui") or []
    except metadata.PackageNotFoundError:
        return ()
    out = []
    for req in reqs:
        spec, _, marker = req.partition(";")
        if not marker.strip() or re.search(r"extra\s*==\s*['\"]train['\"]", marker):
            out.append(spec.strip())
    return tuple(out)


class RemoteServices:
    config: Config
    store: Store
    inventory: Inventory

    # --- settings ----------------------------------------------------------------------
    def _path_setting(self, table: str, key: str, default: Path) -> Path:
        value = self.config.table(table).get(key)
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            raise ConfigError(f"{self.config.path} [{table}] {key}: must be a path string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.config.workspace / p

    def ssh_settings(self) -> SshSettings:
        d = SshSettings()
        t = self.config.table("remote")
        try:
            timeout = float(t.get("connect_timeout_s", d.connect_timeout_s))
        except (TypeError, ValueError):
            raise ConfigError(f"{self.config.path} [remote] connect_timeout_s: must be a number") from None
        return SshSettings(config_file=self._path_setting("remote", "ssh_config", d.config_file),
                           known_hosts=self._path_setting("remote", "known_hosts", d.known_hosts),
                           connect_timeout_s=timeout, command_timeout_s=d.command_timeout_s, keepalive_s=d.keepalive_s)

    def remote_settings(self) -> remote_runs.RemoteSettings:
        t = self.config.table("remote")
        d = remote_runs.RemoteSettings()
        training_dir = t.get("training_dir", d.training_dir)
        if not isinstance(training_dir, str) or not training_dir.startswith("/"):
            raise ConfigError(f"{self.config.path} [remote] training_dir: must be an absolute path on the box")
        return remote_runs.RemoteSettings(training_dir=training_dir, python=str(t.get("python", "") or ""),
                                          disk_warning_percent=self.config.monitoring.disk_warning_percent,
                                          train_requirements=_train_requirements())

    def remote_hosts(self) -> list[str]:
        """Where a run can go: [remote] hosts (ssh aliases), then running tracked instances' SSH endpoints."""
        hosts = [str(h) for h in self.config.table("remote").get("hosts", []) or []]
        for inst in self.store.instance_rows():
            if inst["ended"] is None and inst["ssh_host"]:
                hosts.append(f"root@{inst['ssh_host']}:{inst['ssh_port'] or 22}")
        return list(dict.fromkeys(hosts))

    def ssh_connect(self, host: str, accept_new_host_key: bool | str = False) -> SshSession:
        from ..backends.ssh import SshSession

        return SshSession(host, self.ssh_settings(), accept_new_host_key).connect()

    # --- start -------------------------------------------------------------------------
    def train_start_remote(self, host: str, mix: str | None = None, phase: int | None = None,
                           accept_new_host_key: bool | str = False, progress: Progress | None = None,
                           **overrides: Any) -> Path:
        """Freeze the run here, prepare the box, upload what changed, start the trainer detached."""
        from ..backends.ssh import resolve

        progress = progress or _quiet
        resolve(host, self.ssh_settings())  # a bad host or port is a usage error before anything is built
        mix_name, phase = run_plan.choose_mix(self.config, mix, phase)
        bundle = self.mix_ensure(mix_name, progress)  # rebuilt, or refused if locked, when it no longer matches config.toml
        cfg = run_plan.plan_run(self.config, mix_name, phase, **overrides)
        settings = self.remote_settings()
        progress(f"{host}: connecting")
        with self.ssh_connect(host, accept_new_host_key) as session:
            code = remote_runs.code_transfers(settings)  # hashed once: sized here, uploaded below
            need = sum((bundle / f).stat().st_size for f in BUNDLE_FILES) + sum(t.size for t in code[1]) + (1 << 20)
            info = remote_runs.probe(session, settings, cfg.train.device, need, progress)  # before anything is created
            for warning in info.warnings:
                progress(f"warning: {warning}")
            run_dir = run_plan.create_run(self.config, cfg, bundle, self.runs_root)
            remote_dir = settings.dir("models", run_dir.name)
            runs.write_remote_marker(run_dir, host, remote_dir)
            try:
                self._upload_and_start(session, settings, run_dir, remote_dir, info.python, progress, code)
            except ZeldaError as exc:
                runs.set_state(run_dir, runs.RunState.FAILED, message=str(exc), host=host)
                self.store.run_upsert(run_dir.name, str(run_dir), host, mix_name, phase, None, runs.RunState.FAILED,
                                      remote_dir)
                raise ZeldaError(f"{exc} — {run_dir.name} is kept; `zelda-tui train resume {run_dir.name}` "
                                 "retries (what arrived is not sent again)", exc.exit_code) from None
        return run_dir

    def _upload_and_start(self, session: SshSession, settings: remote_runs.RemoteSettings, run_dir: Path,
                          remote_dir: str, python: str, progress: Progress,
                          code: tuple[str, list[remote_runs.Transfer]] | None = None) -> int:
        """Upload what the box lacks (sha256-skipped), link the data, start. Used by start and resume.

        The data comes from the run's own data/ (frozen at creation), not the mix dir, which may
        have been rebuilt since; status.json is never uploaded (the box's copy is the truth).
        """
        cfg = load_run_config(run_dir)
        data_dir = settings.dir("datasets", cfg.data.mix)
        data = [remote_runs.transfer(run_dir / runs.DATA_DIR / f, posixpath.join(data_dir, f)) for f in BUNDLE_FILES]
        app_dir, code_files = code or remote_runs.code_transfers(settings)
        remote_runs.upload(session, code_files, "upload the trainer code", progress)
        remote_runs.upload(session, data, f"upload mix {cfg.data.mix}", progress)
        remote_runs.upload(session, [remote_runs.transfer(run_dir / runs.RUN_TOML, posixpath.join(remote_dir, runs.RUN_TOML))],
                           "upload run.toml", progress)
        remote_runs.link_data(session, data_dir, remote_dir, list(BUNDLE_FILES))
        remote_runs.check_trainer_imports(session, python, app_dir)
        return self._start(session, run_dir, remote_dir, python, app_dir, cfg.train.gpus, progress)

    def _start(self, session: SshSession, run_dir: Path, remote_dir: str, python: str, app_dir: str,
               gpus: int | str, progress: Progress) -> int:
        progress(f"{session.host.label}: starting the trainer in {remote_dir}")
        pid = remote_runs.start(session, remote_dir, python, gpus, app_dir, self.remote_settings().dir("hf"))
        runs.set_state(run_dir, runs.RunState.STARTING, pid=pid, host=session.host.alias, message="")
        data = load_run_config(run_dir).data
        self.store.run_upsert(run_dir.name, str(run_dir), session.host.alias, data.mix, data.phase, pid,
                              runs.RunState.STARTING, remote_dir)
        return pid

    # --- follow / status ----------------------------------------------------------------
    def remote_row(self, ref: str) -> dict | None:
        """The SQLite row of a remote run (None for a local one).

        A run dir the database does not know as remote (state.sqlite lost or older) but whose
        `.remote` marker names its host is indexed again from the marker: the run dir is the truth.
        """
        run_dir = self.run_dir(ref)
        row = self.store.run_row(run_dir.name)
        if row and row["host"] != "local" and row.get("remote_dir"):
            return row
        marker = runs.read_remote_marker(run_dir)
        if marker is None or marker["host"] == "?":
            return None
        status = runs.read_status(run_dir) or runs.RunStatus(state=runs.RunState.UNKNOWN)
        try:
            data = load_run_config(run_dir).data
            mix, phase = data.mix, data.phase
        except ZeldaError:
            mix, phase = "", None
        self.store.run_upsert(run_dir.name, str(run_dir), marker["host"], mix, phase, status.pid, status.state,
                              marker["remote_dir"])
        return self.store.run_row(run_dir.name)

    def _require_remote(self, ref: str) -> dict:
        row = self.remote_row(ref)
        if row is None:
            raise ZeldaError(f"{ref} is a local run (this needs a run started with --remote)")
        return row

    def run_mirror(self, ref: str, on_lines: LinesCallback | None = None,
                   on_state: Callable[[LinkState], None] | None = None, poll_s: float = 0.1,
                   on_alert: Callable[[str], None] | None = None) -> RemoteMirror:
        """The follower of a remote run; with on_alert it also watches GPU idleness and disk on the box."""
        from ..backends.remote_tail import RemoteMirror
        from ..backends.ssh import SshSession

        row = self._require_remote(ref)
        runs.write_remote_marker(Path(row["run_dir"]), row["host"], row["remote_dir"])  # runs started before markers
        settings = self.ssh_settings()
        tick, every = (self._box_watch(row, on_alert) if on_alert else (None, 60.0))
        return RemoteMirror(lambda: SshSession(row["host"], settings).connect(), row["remote_dir"],
                            Path(row["run_dir"]), on_lines, on_state, poll_s, tick, every, host=row["host"])

    def _box_watch(self, row: dict, alert: Callable[[str], None]) -> tuple[Callable[[SshSession], None], float]:
        """[monitoring]: GPU idle → alert, then budget.on_idle ("alert" or "destroy" the tracked instance);
        remote disk past disk_warning_percent → a warning (once per crossing)."""
        mon, on_idle = self.config.monitoring, self.config.budget.on_idle
        watch = IdleWatch(mon.gpu_idle_threshold_percent, mon.gpu_idle_alert_minutes * 60, mon.gpu_idle_shutdown_minutes * 60)
        every, disk_limit, nvidia_smi = mon.check_every_s, mon.disk_warning_percent, mon.nvidia_smi
        settings = self.remote_settings()
        disk_warned = [False]

        def tick(session: SshSession) -> None:
            host = row["host"]
            _, used = remote_runs.disk_usage(session, settings.training_dir)
            if used >= disk_limit and not disk_warned[0]:
                alert(f"{host}: disk {used:.0f}% full under {settings.training_dir} (warning at {disk_limit:g}%)")
            disk_warned[0] = used >= disk_limit
            now = time.time()
            event = watch.feed(now, remote_runs.gpu_utilisation(session, nvidia_smi))
            if event is None:
                return
            span = watch.idle_for(now)
            idle = f"{host}: GPU idle (< {watch.threshold_percent:g}%) for " + (
                f"{span / 60:.0f} min" if span >= 120 else f"{span:.0f} s")
            if event == "alert" or on_idle == "alert":
                alert(idle + ("" if event == "alert" else " — budget.on_idle = \"alert\": it keeps running"))
                if event == "act":
                    watch.acted_on()
                return
            instance = self.instance_for_host(host)
            if instance is None:
                alert(idle + " — no tracked instance for this host, nothing destroyed")
                watch.acted_on()
                return
            try:
                done = self.instance_destroy(instance["key"])
            except ZeldaError as exc:  # the provider said no: keep following, try again at the next check
                alert(idle + f" — could not destroy {instance['key']}, it is still billing ({exc}); "
                      f"trying again in {every:g} s")
                return
            watch.acted_on()
            alert(idle + f" — destroyed {done['key']} (spent ${done['spent_usd']:.2f})")

        return tick, every

    def instance_for_host(self, host: str) -> dict | None:
        """The tracked, still-running instance whose SSH endpoint is this host (alias or user@host:port)."""
        from ..backends.ssh import resolve

        try:
            spec = resolve(host, self.ssh_settings())
        except ZeldaError:
            return None
        for inst in self.store.instance_rows():
            if inst["ended"] is None and inst["ssh_host"] == spec.hostname and (inst["ssh_port"] or 22) == spec.port:
                return inst
        return None

    def run_sync(self, ref: str) -> dict:
        """One pass of the mirror plus a liveness check of the remote process (`train status`)."""
        row = self._require_remote(ref)
        mirror = self.run_mirror(ref)
        try:
            mirror.sync_once()  # copies nothing when a TUI or a tail is already mirroring this run
        finally:
            mirror.close()
        status = runs.read_status(Path(row["run_dir"]))
        if status and runs.RunState.of(status.state).has_process:
            pid = status.pid or row["pid"]

            def alive() -> bool:
                with self.ssh_connect(row["host"]) as session:
                    return remote_runs.alive(session, pid)

            self.store.run_upsert(row["name"], row["run_dir"], row["host"], row["mix"], row["phase"], pid,
                                  runs.observed_state(status, alive), row["remote_dir"])
        return self.run_info(Path(row["run_dir"]), self.store.run_row(row["name"]))

    # --- stop / resume --------------------------------------------------------------------
    def train_stop_remote(self, ref: str) -> int:
        row = self._require_remote(ref)
        with self.ssh_connect(row["host"]) as session:
            status = remote_runs.read_remote_status(session, row["remote_dir"])
            if status is None:
                raise ZeldaError(f"{row['host']}: {row['remote_dir']}/status.json is missing (run dir deleted?)")
            if not runs.RunState.of(status.state).is_live or not remote_runs.alive(session, status.pid):
                raise ZeldaError(f"{row['name']}: not running on {row['host']} (state {status.state})")
            remote_runs.stop(session, status.pid)
        return int(status.pid)

    def train_resume_remote(self, ref: str, progress: Progress | None = None) -> Resumed:
        progress = progress or _quiet
        row = self._require_remote(ref)
        run_dir = Path(row["run_dir"])
        settings = self.remote_settings()
        with self.ssh_connect(row["host"]) as session:
            status = remote_runs.read_remote_status(session, row["remote_dir"])  # None: the upload never finished
            if status is not None and runs.RunState.of(status.state).is_live and remote_runs.alive(session, status.pid):
                raise ZeldaError(f"{row['name']} is still {status.state} on {row['host']} (pid {status.pid})")
            if status is not None and status.state == runs.RunState.COMPLETED:
                raise ZeldaError(f"{row['name']} already completed")
            python = remote_runs.ensure_python(session, settings, progress)
            steps = remote_runs.checkpoint_steps(session, row["remote_dir"])  # what the trainer resumes from
            self._upload_and_start(session, settings, run_dir, row["remote_dir"], python, progress)
        return Resumed(run_dir, steps[-1] if steps else None)

    # --- artifacts -----------------------------------------------------------------------
    def fetch_artifacts(self, ref: str, checkpoints: str = "none", progress: Progress | None = None) -> dict:
        """lora_adapters/ (and chosen checkpoints: "none", "all", "latest" or "N,M") into the local run dir."""
        progress = progress or _quiet
        row = self._require_remote(ref)
        run_dir, remote_dir = Path(row["run_dir"]), row["remote_dir"]
        fetched: list[str] = []
        total = 0
        with self.ssh_connect(row["host"]) as session:
            wanted = [runs.ADAPTERS]
            if checkpoints != "none":
                wanted += self._remote_checkpoints(session, remote_dir, checkpoints)
            for rel in wanted:
                src = f"{remote_dir}/{rel}"
                try:
                    total += remote_runs.download_tree(session, src, run_dir / rel, f"fetch {rel}", progress)
                except ZeldaError as exc:
                    if rel == runs.ADAPTERS and "does not exist" in str(exc):
                        raise ZeldaError(f"{row['host']}: {src} does not exist yet (the run writes it when it ends; "
                                         "fetch a checkpoint with --checkpoint latest)") from None
                    raise
                fetched.append(rel)
        return {"run": row["name"], "fetched": fetched, "bytes": total, "into": str(run_dir)}

    def _remote_checkpoints(self, session: SshSession, remote_dir: str, which: str) -> list[str]:
        steps = remote_runs.checkpoint_steps(session, remote_dir)
        if which == "all":
            chosen = steps
        elif which == "latest":
            chosen = steps[-1:]
        else:
            try:
                chosen = [int(x) for x in which.split(",")]
            except ValueError:
                raise ZeldaError(f"--checkpoint: expected none, all, latest or step numbers, got {which!r}") from None
            missing = [s for s in chosen if s not in steps]
            if missing:
                raise ZeldaError(f"{session.host.label}: no checkpoint {missing[0]} (there: {steps or 'none'})")
        if not chosen and which != "all":
            raise ZeldaError(f"{session.host.label}: no checkpoints in {remote_dir} yet")
        return [f"{runs.CHECKPOINTS}/checkpoint-{s}" for s in chosen]

    def backup_artifacts(self, ref: str) -> dict:
        """rsync lora_adapters/ from the GPU box to [backup] host:path/<run>/ (the box needs access there)."""
        row = self._require_remote(ref)
        t = self.config.table("backup")
        host, path = t.get("host"), t.get("path")
        if not host or not path:
            raise ConfigError(f"{self.config.path} [backup]: set host (an ssh alias the GPU box can reach) and path")
        target = f"{host}:{posixpath.join(str(path), row['name'], runs.ADAPTERS)}"
        with self.ssh_connect(row["host"]) as session:
            out = remote_runs.rsync_to_backup(session, f"{row['remote_dir']}/{runs.ADAPTERS}", target,
                                              str(t.get("rsync_ssh", "") or ""))
        sent = re.search(r"Total transferred file size: ([\d,.]+)", out)
        return {"run": row["name"], "target": target, "bytes": int(sent.group(1).replace(",", "").split(".")[0]) if sent else None}
