"""Recover a lost remote run on another box (#17.3): the next fitting offer within the budget (or a
host the user names), its run dir uploaded with the newest checkpoint safe at home, the trainer
resumed there from it with the same data order.

A run's boxes are kept in its run dir, `boxes.jsonl` (one line per move: the box it left with that
box's instance and spend, the box it went to, the step it resumed from), so `train status` and the
Runs screen can say where it has been.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..backends import checkpoint_sync, remote_runs
from ..core import atomic, offer_query, runs
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.store import Store
from .hosts import Hosts
from .instances import InstanceRegistry
from .offers import OfferService
from .runs import RunService
from .views import LaunchPlan, View

Progress = Callable[[str], None]
HISTORY = "boxes.jsonl"
LAUNCHABLE = ("vast", "vultr")
CANDIDATES = 5  # offers whose budget is checked, cheapest first
LOGS = (runs.TRAIN_LOG, runs.METRICS)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class RecoveryPlan(View):
    """Where a lost run would go on, and from which checkpoint; `problems` say why it cannot (empty: it can)."""

    run: str
    from_checkpoint: str | None
    from_step: int | None
    skipped: list[str]
    query: str
    offer: LaunchPlan | None
    host: str | None
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.run}: resumes from "
               + (f"{self.from_checkpoint} (safe here, sha256 verified)" if self.from_checkpoint else "step 0 "
                  "(no checkpoint came home)")]
        out += [f"  not used: {s} — the previous good one is" for s in self.skipped]
        if self.offer is not None:
            o, b = self.offer.offer, self.offer.budget
            est = (f"estimated {o.hours:.1f} h, ${o.dollars:.2f} for the phase's mix" if o.hours is not None
                   and o.dollars is not None else "no time estimate for this GPU")
            left = f"${b.left_usd:.2f} of ${b.max_total_usd:.2f} left" if b.left_usd is not None else "no budget set"
            out.append(f"  on {o.key}: {o.num_gpus} x {o.gpu_name} in {o.region} at ${o.dph_total:.3f}/h; {est}; "
                       f"budget: {left}")
        elif self.host:
            out.append(f"  on {self.host}")
        out += [f"  refused: {p}" for p in self.problems]
        return out


@dataclass(frozen=True)
class Recovered(View):
    run: str
    host: str
    remote_dir: str
    pid: int
    from_step: int | None
    instance: str | None


@dataclass
class RecoveryService:
    config: Config
    store: Store
    runs: RunService
    offers: OfferService
    instances: InstanceRegistry
    hosts: Hosts

    # --- the plan ---------------------------------------------------------------------------
    def plan(self, ref: str, host: str | None = None, query: str | None = None) -> RecoveryPlan:
        """The checkpoint it would resume from and, without `host`, the cheapest offer of the run's own
        query (its lost instance's GPU and count) that the budget allows; nothing is rented."""
        view = self.runs.info(self.runs.dir(ref))
        if not view.is_remote:
            raise ZeldaError(f"{view.name} is a local run: `zelda-tui train resume {view.name}` restarts it here")
        if view.state != runs.RunState.LOST:
            raise ZeldaError(f"{view.name} is {view.state}, not lost: only a run whose box is gone is recovered "
                             f"(`zelda-tui train status {view.name}` asks the box)")
        good = checkpoint_sync.newest_good(view.run_dir)
        name = f"{runs.CHECKPOINTS}/{good.path.name}" if good.path else None
        query = query if query is not None else self._query(view.host)
        if host is not None:
            return RecoveryPlan(view.name, name, good.step, good.skipped, query, None, host)
        offer, problems = self._offer(query)
        return RecoveryPlan(view.name, name, good.step, good.skipped, query, offer, None, problems)

    def _query(self, host: str) -> str:
        """The run's own launch query: the GPU and count of the instance it ran on (else the default query)."""
        inst = self.instances.for_host(host) or self.instances.box_gone(host)
        if inst is None or not inst.gpu_name:
            return offer_query.DEFAULT_QUERY
        return f'gpu_name="{inst.gpu_name}" num_gpus={inst.num_gpus or 1}'

    def _offer(self, query: str) -> tuple[LaunchPlan | None, list[str]]:
        rows, warnings = self.offers.search(LAUNCHABLE, query=query, sort="dph_total")
        rows = [r for r in rows if r.provider in LAUNCHABLE and r.available
                and not (r.price_source or "").startswith("catalog")]  # a catalog entry cannot be rented
        if not rows:
            why = f" ({'; '.join(warnings)})" if warnings else ""
            return None, [f"no offer fits `{query}`{why}: widen it with --query (e.g. another gpu_name) or "
                          "name a box with --host"]
        first: LaunchPlan | None = None
        for row in rows[:CANDIDATES]:
            plan = self.offers.launch_plan(row.key)
            if not plan.over_budget:
                return plan, []
            first = first or plan
        assert first is not None
        return first, [f"{first.offer.key} (the cheapest of {len(rows)} fitting offers): " + "; ".join(first.over_budget)
                       + " — raise budget.max_total_usd / max_hourly_usd, or name a box with --host"]

    # --- the move -----------------------------------------------------------------------------
    def recover(self, ref: str, host: str | None = None, query: str | None = None,
                accept_new_host_key: bool | str = False, progress: Progress = _quiet,
                wait_ready_s: float = 900.0, poll_s: float = 10.0) -> Recovered:
        """Rent the planned offer (or use `host`), wait for its SSH, upload the run dir with the newest
        good checkpoint, resume there. A box rented here is new by definition: its host key is accepted."""
        plan = self.plan(ref, host, query)
        if plan.problems:
            raise ZeldaError(f"{plan.run}: stays lost: " + "; ".join(plan.problems))
        for line in plan.skipped:
            progress(f"warning: {line}: resuming from the previous good checkpoint")
        run_dir = self.runs.dir(ref)
        old_host = self.runs.info(run_dir).host
        left = self.instances.for_host(old_host) or self.instances.box_gone(old_host)
        instance = None
        if host is None:
            assert plan.offer is not None
            progress(f"renting {plan.offer.offer.key} at ${plan.offer.offer.dph_total:.3f}/h")
            tracked = self.offers.launch(plan.offer.offer.key)
            instance = tracked.key
            host = self._wait_ssh(tracked.key, wait_ready_s, poll_s, progress)
            accept_new_host_key = True
        settings = self.hosts.remote_settings()
        remote_dir = settings.dir("models", run_dir.name)
        progress(f"{host}: connecting")
        with self.hosts.connect(host, accept_new_host_key) as session:
            items = [remote_runs.transfer(run_dir / f, posixpath.join(remote_dir, f)) for f in LOGS
                     if (run_dir / f).is_file()]  # the logs go on where they end here: the mirror's offsets hold
            if plan.from_checkpoint is not None:
                ckpt = run_dir / plan.from_checkpoint
                items += [remote_runs.transfer(p, posixpath.join(remote_dir, plan.from_checkpoint,
                                                                 p.relative_to(ckpt).as_posix()))
                          for p in sorted(ckpt.rglob("*")) if p.is_file()]
            remote_runs.upload(session, items, f"upload {run_dir.name} ({plan.from_checkpoint or 'no checkpoint'})",
                               progress)
            runs.write_remote_marker(run_dir, host, remote_dir)
            row = self.store.run_row(run_dir.name) or {"mix": "", "phase": None}
            self.store.run_upsert(run_dir.name, str(run_dir), host, row["mix"], row["phase"], None,
                                  runs.RunState.STARTING, remote_dir)
            pid = self.hosts.ssh(host, remote_dir).start(run_dir, progress, session)
            self.store.run_upsert(run_dir.name, str(run_dir), session.host.alias, row["mix"], row["phase"], pid,
                                  runs.RunState.STARTING, remote_dir)
        self._record(run_dir, {"t": round(time.time(), 3), "left": old_host,
                               "left_instance": left.key if left else None,
                               "left_spent_usd": round(left.cost(time.time()), 2) if left else None,
                               "host": host, "remote_dir": remote_dir, "instance": instance,
                               "from_step": plan.from_step})
        return Recovered(run_dir.name, host, remote_dir, pid, plan.from_step, instance)

    def _wait_ssh(self, key: str, wait_s: float, poll_s: float, progress: Progress) -> str:
        deadline = time.monotonic() + wait_s
        while True:
            row = next((r for r in self.instances.rows() if r.key == key), None)
            if row is not None and row.ready and row.ssh_host:
                return f"root@{row.ssh_host}:{row.ssh_port or 22}"
            if time.monotonic() >= deadline:
                raise ZeldaError(f"{key}: no SSH endpoint after {wait_s / 60:.0f} min (state "
                                 f"{row.state if row else '?'}); it is billing: `zelda-tui instances destroy {key} --yes`")
            progress(f"{key}: {row.state if row else '?'}, waiting for SSH")
            time.sleep(poll_s)

    # --- where it has been ----------------------------------------------------------------------
    @staticmethod
    def _record(run_dir: Path, entry: dict[str, Any]) -> None:
        path = run_dir / HISTORY
        old = path.read_bytes() if path.exists() else b""
        atomic.write_bytes(path, old + (json.dumps(entry) + "\n").encode())

    @staticmethod
    def history(run_dir: Path) -> list[dict[str, Any]]:
        """The run's moves, oldest first (none: it never left its first box)."""
        try:
            text = (Path(run_dir) / HISTORY).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return runs.parse_metrics(text.splitlines())

    @classmethod
    def history_line(cls, run_dir: Path) -> str | None:
        """`box-a (vast:1, $2.00 spent) → box-b from checkpoint-3; ...` for train status and the Runs screen."""
        parts = []
        for m in cls.history(run_dir):
            spent = f", ${m['left_spent_usd']:.2f} spent" if m.get("left_spent_usd") is not None else ""
            start = f"checkpoint-{m['from_step']}" if m.get("from_step") else "step 0"
            parts.append(f"{m.get('left')} ({m.get('left_instance') or 'untracked'}{spent}) → {m.get('host')} "
                         f"from {start}")
        return "; ".join(parts) or None
