"""Where a run lives: one `RunHost` per run, `LocalHost` (this machine) or `SshHost` (a GPU box).

The question "is this run local or remote?" is answered once, when the host of a run is made
(`services.runs.host(ref)`, from its SQLite row or its run dir's `.remote` marker); everything
after that asks the host. Both keep the run dir contract: a remote run's local dir is a mirror
of the box's, so readers (tail, Runs screen, eval) read local files whatever the host.

A host never touches SQLite: the run service indexes what a host did.
"""

from __future__ import annotations

import json
import posixpath
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

from ..core import evals, runs
from ..core.atomic import atomic_open
from ..core.errors import NoCheckpoints, ZeldaError
from ..core.mix import EVAL_SOURCES
from ..core.train_config import load_run_config
from . import box_env, box_files, remote_runs, runners
from .generate_runner import GENERATOR_STACK
from .ssh_base import RemoteMissing, SshSettings

if TYPE_CHECKING:  # paramiko loads when a remote step runs, not at app start
    from .checkpoint_sync import CheckpointSync
    from .remote_tail import LinesCallback, LinkState, RemoteMirror
    from .ssh import SshSession

Progress = Callable[[str], None]
BUNDLE_FILES = ("train.jsonl", "eval.jsonl", EVAL_SOURCES, "metadata.json")


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Fetched:
    """What `fetch` brought home: run-dir-relative paths and the bytes moved."""

    fetched: list[str]
    bytes: int


class RunHost(Protocol):
    """What can be done to a run where it runs."""

    @property
    def name(self) -> str: ...  # "local", or the SSH alias / user@host:port

    @property
    def remote_dir(self) -> str | None: ...  # the run dir on the box (None: here)

    @property
    def is_remote(self) -> bool: ...

    def start(self, run_dir: Path, progress: Progress = _quiet) -> int:
        """Start the trainer of a freshly created run dir; its pid."""
        ...

    def stop(self, run_dir: Path) -> int:
        """SIGTERM to the run's trainer (it checkpoints, then exits); its pid."""
        ...

    def resume(self, run_dir: Path, progress: Progress = _quiet) -> tuple[int, int | None]:
        """Start the trainer again in an existing run: (pid, step of the checkpoint it continues from)."""
        ...

    def alive(self, status: runs.RunStatus, indexed_state: str | None = None, *, ask: bool = False) -> bool:
        """Whether the run's process lives: here, always asked; on a box, as the last sync found it
        (`indexed_state` from SQLite) unless `ask` goes over SSH now."""
        ...

    def sync(self, run_dir: Path) -> None:
        """Bring the run dir here up to date with where the run lives."""
        ...

    def fetch(self, run_dir: Path, checkpoints: str = "none", progress: Progress = _quiet) -> Fetched:
        """lora_adapters/ (and the chosen checkpoints) into the run dir here."""
        ...


@dataclass(frozen=True)
class LocalHost:
    """A run on this machine: a detached trainer process (backends.runners)."""

    name: str = "local"
    remote_dir: str | None = None

    @property
    def is_remote(self) -> bool:
        return False

    def start(self, run_dir: Path, progress: Progress = _quiet) -> int:
        runners.check_trainer_stack()
        return runners.start_local(run_dir, load_run_config(run_dir).train.gpus)

    def stop(self, run_dir: Path) -> int:
        return runners.stop_local(run_dir)

    def resume(self, run_dir: Path, progress: Progress = _quiet) -> tuple[int, int | None]:
        runners.check_trainer_stack()
        found = runs.checkpoints(run_dir)  # what the trainer resumes from, by the same rule
        pid = runners.start_local(run_dir, load_run_config(run_dir).train.gpus)
        return pid, found[-1][0] if found else None

    def alive(self, status: runs.RunStatus, indexed_state: str | None = None, *, ask: bool = False) -> bool:
        return runs.pid_alive(status.pid)

    def sync(self, run_dir: Path) -> None:
        pass  # the run writes here

    def fetch(self, run_dir: Path, checkpoints: str = "none", progress: Progress = _quiet) -> Fetched:
        raise ZeldaError(f"{Path(run_dir).name} is a local run (this needs a run started with --remote)")


@dataclass(frozen=True)
class SshHost:
    """A run on a GPU box over SSH: the trainer runs detached there (setsid nohup) in `remote_dir`."""

    name: str
    remote_dir: str | None
    ssh_settings: Callable[[], SshSettings]  # read when a step needs them: a listing reads neither
    box_settings: Callable[[], remote_runs.RemoteSettings]

    @property
    def is_remote(self) -> bool:
        return True

    @property
    def ssh(self) -> SshSettings:
        return self.ssh_settings()

    @property
    def settings(self) -> remote_runs.RemoteSettings:
        return self.box_settings()

    # --- the connection -------------------------------------------------------------
    def connect(self, accept_new_host_key: bool | str = False) -> SshSession:
        from .ssh import SshSession

        return SshSession(self.name, self.ssh, accept_new_host_key).connect()

    @contextmanager
    def _session(self) -> Iterator[SshSession]:
        with self.connect() as session:
            yield session

    def _dir(self) -> str:
        if not self.remote_dir:
            raise ZeldaError(f"{self.name}: no run dir on the box yet")
        return self.remote_dir

    # --- start / resume ---------------------------------------------------------------
    def start(self, run_dir: Path, progress: Progress = _quiet, session: SshSession | None = None,
              env: box_env.BoxEnv | None = None, code: tuple[str, list[box_files.Transfer]] | None = None) -> int:
        """Upload what the box lacks (sha256-skipped), link the data, start the trainer.

        The data comes from the run's own data/ (frozen at creation), not the mix dir, which may
        have been rebuilt since; status.json is never uploaded (the box's copy is the truth).
        box.json (the box's GPUs, pythons and the chosen environment) is written here and there.
        """
        if session is None:
            with self._session() as own:
                return self.start(run_dir, progress, own, env, code)
        remote_dir, settings = self._dir(), self.settings
        cfg = load_run_config(run_dir)
        env = env or remote_runs.probe(session, settings, cfg.train.device, 0, progress).env
        python = env.python
        with atomic_open(Path(run_dir) / box_env.BOX_JSON) as fh:
            fh.write(json.dumps(env.to_json(), indent=1).encode())
        data_dir = settings.dir("datasets", cfg.data.mix)
        data = [box_files.transfer(run_dir / runs.DATA_DIR / f, posixpath.join(data_dir, f)) for f in BUNDLE_FILES]
        app_dir, code_files = code or box_files.code_transfers(settings)
        box_files.upload(session, code_files, "upload the trainer code", progress)
        box_files.upload(session, data, f"upload mix {cfg.data.mix}", progress)
        frozen = [runs.RUN_TOML, box_env.BOX_JSON]
        if cfg.eval.prompt_set:  # the prompt set of the evals the box runs by itself
            frozen.append(posixpath.join(evals.EVALS_DIR, cfg.eval.prompt_set, evals.PROMPTS_FILE))
        box_files.upload(session, [box_files.transfer(run_dir / f, posixpath.join(remote_dir, f))
                                   for f in frozen], "upload run.toml", progress)
        remote_runs.link_data(session, data_dir, remote_dir, list(BUNDLE_FILES))
        remote_runs.check_trainer_imports(session, python, app_dir)
        progress(f"{session.host.label}: starting the trainer in {remote_dir}")
        pid = remote_runs.start(session, remote_dir, python, cfg.train.gpus, app_dir, settings.dir("hf"))
        runs.set_state(run_dir, runs.RunState.STARTING, pid=pid, host=session.host.alias, message="")
        return pid

    def resume(self, run_dir: Path, progress: Progress = _quiet) -> tuple[int, int | None]:
        remote_dir = self._dir()
        name = Path(run_dir).name
        with self._session() as session:
            status = remote_runs.read_remote_status(session, remote_dir)  # None: the upload never finished
            if status is not None and runs.RunState.of(status.state).is_live and remote_runs.alive(session, status.pid):
                raise ZeldaError(f"{name} is still {status.state} on {self.name} (pid {status.pid})")
            if status is not None and status.state == runs.RunState.COMPLETED:
                raise ZeldaError(f"{name} already completed")
            steps = remote_runs.checkpoint_steps(session, remote_dir)  # what the trainer resumes from
            pid = self.start(run_dir, progress, session)
        return pid, steps[-1] if steps else None

    def run_python(self, session: SshSession, run_dir: Path, progress: Progress = _quiet) -> str:
        """The python the run's trainer ran with (box.json: the verified environment), which the
        programs run beside it on the box (eval generator, export) use too; for a run from before
        box.json, the environment a start would choose now."""
        python = box_env.recorded_python(run_dir)
        if python is None:
            cfg = load_run_config(run_dir)
            python = remote_runs.probe(session, self.settings, cfg.train.device, 0, progress).env.python
        return python

    # --- the process ----------------------------------------------------------------
    def stop(self, run_dir: Path) -> int:
        remote_dir = self._dir()
        with self._session() as session:
            status = remote_runs.read_remote_status(session, remote_dir)
            if status is None:
                raise ZeldaError(f"{self.name}: {remote_dir}/status.json is missing (run dir deleted?)")
            if status.pid is None or not runs.RunState.of(status.state).is_live or not remote_runs.alive(session, status.pid):
                raise ZeldaError(f"{Path(run_dir).name}: not running on {self.name} (state {status.state})")
            remote_runs.stop(session, status.pid)
        return int(status.pid or 0)

    def alive(self, status: runs.RunStatus, indexed_state: str | None = None, *, ask: bool = False) -> bool:
        if not ask:
            return indexed_state != runs.RunState.DIED
        with self._session() as session:
            return remote_runs.alive(session, status.pid)

    # --- files ----------------------------------------------------------------------
    def mirror(self, run_dir: Path, on_lines: LinesCallback | None = None,
               on_state: Callable[[LinkState], None] | None = None, poll_s: float = 0.1,
               on_tick: Callable[[SshSession], None] | None = None, tick_s: float = 60.0) -> RemoteMirror:
        """The follower that copies the box's logs into `run_dir` (reconnecting on its own)."""
        from .remote_tail import RemoteMirror

        runs.write_remote_marker(Path(run_dir), self.name, self._dir())  # runs started before markers
        return RemoteMirror(self.connect, self._dir(), Path(run_dir), on_lines, on_state, poll_s, on_tick, tick_s,
                            host=self.name)

    def checkpoint_sync(self, run_dir: Path, keep: int = 2, backup: tuple[str, str] | None = None,
                        say: Callable[[str], None] = _quiet, warn: Callable[[str], None] | None = None
                        ) -> CheckpointSync:
        """The background copier of the run's checkpoints into `run_dir` (#17: they come home as they land)."""
        from .checkpoint_sync import CheckpointSync

        return CheckpointSync(self.connect, self._dir(), Path(run_dir), keep, backup, say, warn)

    def sync(self, run_dir: Path) -> None:
        mirror = self.mirror(run_dir)
        try:
            mirror.sync_once()  # copies nothing when a TUI or a tail is already mirroring this run
        finally:
            mirror.close()

    def fetch(self, run_dir: Path, checkpoints: str = "none", progress: Progress = _quiet) -> Fetched:
        remote_dir = self._dir()
        fetched: list[str] = []
        total = 0
        with self._session() as session:
            wanted = [runs.ADAPTERS]
            if checkpoints != "none":
                wanted += _remote_checkpoints(session, remote_dir, checkpoints)
            for rel in wanted:
                src = f"{remote_dir}/{rel}"
                try:
                    total += box_files.download_tree(session, src, Path(run_dir) / rel, f"fetch {rel}", progress)
                except RemoteMissing:
                    if rel != runs.ADAPTERS:
                        raise
                    raise ZeldaError(f"{self.name}: {src} does not exist yet (the run writes it when it ends; "
                                     "fetch a checkpoint with --checkpoint latest)") from None
                fetched.append(rel)
        return Fetched(fetched, total)

    def backup(self, target: str, rsync_ssh: str = "") -> int | None:
        """The box rsyncs lora_adapters/ to `target` (host:path); the bytes it sent, when it says."""
        with self._session() as session:
            out = remote_runs.rsync_to_backup(session, f"{self._dir()}/{runs.ADAPTERS}", target, rsync_ssh)
        sent = re.search(r"Total transferred file size: ([\d,.]+)", out)
        return int(sent.group(1).replace(",", "").split(".")[0]) if sent else None


class BoxEval:
    """A run's checkpoints evaluated on its box: the generator starts detached there beside the
    run (it outlives this connection); the mirror brings its answers and events home."""

    def __init__(self, host: SshHost, run_dir: Path) -> None:
        self.host, self.run_dir = host, Path(run_dir)

    def checkpoints(self) -> list[tuple[str, int]]:
        """(name, step) of what an `all` eval covers on the box (base, complete checkpoints, final)."""
        with self.host._session() as session:
            return remote_runs.eval_checkpoints(session, self.host._dir())

    def start(self, prompt_set: str, checkpoints: list[str], options: list[str], progress: Progress = _quiet) -> int:
        """Upload the prompt set (and the code, both sha256-skipped), check the run's python can
        generate, start the generator; its pid on the box."""
        remote_dir, settings = self.host._dir(), self.host.settings
        rel = posixpath.join(evals.EVALS_DIR, prompt_set, evals.PROMPTS_FILE)
        with self.host._session() as session:
            python = self.host.run_python(session, self.run_dir, progress)
            app_dir, code_files = box_files.code_transfers(settings)
            box_files.upload(session, code_files, "upload the generator code", progress)
            box_files.upload(session, [box_files.transfer(self.run_dir / rel, posixpath.join(remote_dir, rel))],
                             f"upload prompt set {prompt_set}", progress)
            remote_runs.check_stack(session, python, GENERATOR_STACK, "generate eval answers")
            progress(f"{session.host.label}: starting the eval generator in {remote_dir}")
            return remote_runs.start_generate(session, remote_dir, python, app_dir, settings.dir("hf"), prompt_set,
                                              checkpoints, options)

    def alive(self, session: SshSession, pid: int) -> bool:
        return remote_runs.alive(session, pid)


def _remote_checkpoints(session: SshSession, remote_dir: str, which: str) -> list[str]:
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
        raise NoCheckpoints(f"{session.host.label}: no checkpoints in {remote_dir} yet")
    return [f"{runs.CHECKPOINTS}/checkpoint-{s}" for s in chosen]
