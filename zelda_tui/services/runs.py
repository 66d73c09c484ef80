"""Training runs on this machine: start, list, status, stop, resume."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..backends import runners
from ..core import run_plan, runs
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.offers import spent_usd
from ..core.inventory import Inventory
from ..core.store import Store
from ..core.train_config import load_run_config


@dataclass(frozen=True)
class Resumed:
    """What a resume started: the run, and the checkpoint step it continues from (None: step 0)."""

    run_dir: Path
    from_step: int | None

    def line(self) -> str:
        if self.from_step is None:
            return f"resumed {self.run_dir.name}: it has no complete checkpoint, so it starts over from step 0"
        return f"resumed {self.run_dir.name} from checkpoint-{self.from_step}"


class RunServices:
    config: Config
    store: Store
    inventory: Inventory

    @property
    def runs_root(self) -> Path:
        return self.config.workspace / "runs"

    def train_start(self, mix: str | None = None, phase: int | None = None,
                    say: Callable[[str], None] | None = None, **overrides) -> Path:
        """Freeze a run (building the mix bundle if it is missing) and start the trainer detached."""
        mix_name, phase = run_plan.choose_mix(self.config, mix, phase)
        bundle = self.mix_ensure(mix_name, say)  # rebuilt, or refused if locked, when it no longer matches config.toml
        cfg = run_plan.plan_run(self.config, mix_name, phase, **overrides)
        runners.check_trainer_stack()  # before a run dir exists or "started" is said
        run_dir = run_plan.create_run(self.config, cfg, bundle, self.runs_root)
        pid = runners.start_local(run_dir, cfg.train.gpus)
        self.store.run_upsert(run_dir.name, str(run_dir), "local", mix_name, phase, pid, runs.RunState.STARTING)
        return run_dir

    def run_dir(self, ref: str) -> Path:
        """A run by name (state database or runs/) or by path."""
        row = self.store.run_row(ref)
        if row:
            return Path(row["run_dir"])
        for candidate in (self.runs_root / ref, Path(ref)):
            if (candidate / runs.RUN_TOML).is_file():
                return candidate.resolve()
        raise ZeldaError(f"no run '{ref}' (see `zelda-tui train list`)", exit_code=2)

    def run_list(self) -> list[dict]:
        """Every known run with its live state from status.json (a dead process shows as 'died')."""
        seen = {}
        for row in self.store.run_rows():
            seen[row["name"]] = row
        if self.runs_root.is_dir():
            for d in sorted(self.runs_root.iterdir()):
                if d.name not in seen and (d / runs.RUN_TOML).is_file():
                    try:  # a run dir the database does not know (copied in, or an older state.sqlite)
                        data = load_run_config(d).data
                        mix, phase = data.mix, data.phase
                    except ZeldaError:
                        mix, phase = "", None
                    marker = runs.read_remote_marker(d)  # a remote run's copy says so itself
                    seen[d.name] = {"name": d.name, "run_dir": str(d), "host": marker["host"] if marker else "local",
                                    "remote_dir": marker["remote_dir"] if marker else None, "mix": mix, "phase": phase}
        infos = [self.run_info(Path(r["run_dir"]), r) for r in sorted(seen.values(), key=lambda r: r["name"], reverse=True)]
        for info in infos:
            if info["state"] == runs.RunState.COMPLETED and not self.store.throughput_has(info["name"]):
                self._record_throughput(Path(info["run_dir"]))
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

    def run_info(self, run_dir: Path, row: dict | None = None) -> dict:
        """A run's state and latest metrics from its (local, or locally mirrored) run dir.

        A local process is checked directly; a remote one is as of the last sync of the mirror
        (`synced_at`), and "died" once a sync found its process gone.
        """
        row = row or self.store.run_row(run_dir.name)
        remote = bool(row and row.get("host", "local") != "local" and row.get("remote_dir"))
        found = runs.read_status(run_dir)
        status = found or runs.RunStatus(state=runs.RunState.UNKNOWN)
        if remote:  # as of the last sync, which records a process it found gone as died in SQLite
            state = runs.observed_state(found, lambda: (row or {}).get("state") != runs.RunState.DIED)
        else:
            state = runs.observed_state(found, lambda: runs.pid_alive(status.pid))
        metrics = runs.read_metrics(run_dir)
        last_train = next((m for m in reversed(metrics) if m.get("event") == "train"), {})
        last_eval = next((m for m in reversed(metrics) if m.get("event") == "eval"), {})
        return {
            "name": run_dir.name, "run_dir": str(run_dir), "host": (row or {}).get("host", "local"),
            "mix": (row or {}).get("mix", ""), "phase": (row or {}).get("phase"),
            "state": str(state), "pid": status.pid, "step": status.step, "max_steps": status.max_steps,
            "loss": last_train.get("loss"), "eval_loss": last_eval.get("eval_loss"),
            "tokens_per_s": last_train.get("tokens_per_s"), "vram_peak_gb": last_train.get("vram_peak_gb"),
            "eta_s": last_train.get("eta_s") if state == runs.RunState.RUNNING else None,
            "heartbeat": status.heartbeat, "finished": status.finished, "last_checkpoint": status.last_checkpoint,
            "best_checkpoint": status.best_checkpoint, "message": status.message,
            "remote_dir": (row or {}).get("remote_dir") if remote else None,
            "synced_at": _mtime(run_dir / runs.STATUS) if remote else None,
            **(self._instance_spend(row["host"]) if remote else {"instance": None, "spent_usd": None}),
        }

    def _instance_spend(self, host: str) -> dict:
        """The tracked instance behind a remote run's host, and what it has cost so far."""
        inst = self.instance_for_host(host)
        if inst is None:
            return {"instance": None, "spent_usd": None}
        return {"instance": inst["key"], "spent_usd": round(spent_usd(inst, time.time()), 2)}

    def train_stop(self, ref: str) -> int:
        if self.remote_row(ref):
            return self.train_stop_remote(ref)
        return runners.stop_local(self.run_dir(ref))

    def train_resume(self, ref: str) -> Resumed:
        """Start the trainer again in an existing run dir: it continues from the latest complete checkpoint."""
        if self.remote_row(ref):
            return self.train_resume_remote(ref)
        run_dir = self.run_dir(ref)
        info = self.run_info(run_dir)
        state = runs.RunState(info["state"])
        if state.has_process:
            raise ZeldaError(f"{run_dir.name} is still {state} (pid {info['pid']})")
        if state == runs.RunState.COMPLETED:
            raise ZeldaError(f"{run_dir.name} already completed")
        runners.check_trainer_stack()
        found = runs.checkpoints(run_dir)  # what the trainer resumes from, by the same rule
        pid = runners.start_local(run_dir, load_run_config(run_dir).train.gpus)
        row = self.store.run_row(run_dir.name) or {"mix": "", "phase": None}
        self.store.run_upsert(run_dir.name, str(run_dir), "local", row["mix"], row["phase"], pid, runs.RunState.STARTING)
        return Resumed(run_dir, found[-1][0] if found else None)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
