"""Recover a lost remote run on another box (#17.3): the next fitting offer within the budget (or a
host the user names), its run dir uploaded with the newest checkpoint safe at home, the trainer
resumed there from it with the same data order.

A run's boxes are kept in its run dir, `boxes.jsonl` (one line per move: the box it left with that
box's instance, spend and time there, the box it went to, the step it resumed from), so `train status`
and the Runs screen can say where it has been, and `[recovery] auto` can count its recoveries.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..backends import box_files, checkpoint_sync
from ..core import atomic, locks, offer_query, runs
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.format import duration
from ..core.store import Store
from .hosts import Hosts
from .instances import InstanceRegistry
from .offers import OfferService
from .runs import RunService
from .views import LaunchPlan, RunView, View

Progress = Callable[[str], None]
HISTORY = "boxes.jsonl"
LOCK = ".recover.lock"  # one recovery of a run at a time (R, train recover, [recovery] auto)
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


    def brief(self) -> str:
        """One line for an alert: where it would go, at what price, from which checkpoint."""
        where = self.host or "?"
        if self.offer is not None:
            o, b = self.offer.offer, self.offer.budget
            total = f", ~${o.dollars:.2f} in all" if o.dollars is not None else ""
            left = f", ${b.left_usd:.2f} of the budget left" if b.left_usd is not None else ""
            where = f"{o.key} ({o.num_gpus} x {o.gpu_name}, ${o.dph_total:.3f}/h{total}{left})"
        return f"{where} from {self.from_checkpoint or 'step 0'}"


@dataclass(frozen=True)
class Recovered(View):
    run: str
    host: str
    remote_dir: str
    pid: int
    from_step: int | None
    instance: str | None

    def line(self) -> str:
        start = f"checkpoint-{self.from_step}" if self.from_step is not None else "step 0"
        rented = f" ({self.instance})" if self.instance else ""
        return f"recovered {self.run} on {self.host}{rented} (pid {self.pid}) from {start}"


@dataclass(frozen=True)
class BoxStay(View):
    """One box a run has been on: its instance, when it was there (`until` None: still there), what it
    cost, and where the run picked up there (`resumed`: "started here", "from checkpoint-N", "from step 0")."""

    host: str
    instance: str | None
    since: float | None
    until: float | None
    spent_usd: float | None
    resumed: str

    def span(self, now: float) -> str:
        if self.since is None:
            return "time unknown"
        return duration((self.until or now) - self.since) + (" so far" if self.until is None else "")

    def line(self, now: float) -> str:
        spent = f"${self.spent_usd:,.2f}" if self.spent_usd is not None else "$ untracked"
        return f"{self.host} · {self.resumed} · {self.span(now)} · {spent} ({self.instance or 'no tracked instance'})"


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
        query (its lost instance's GPU and count) that the budget allows; nothing is rented. A recovery
        under way (another terminal, [recovery] auto) is a problem: a second would rent a second box."""
        plan = self._plan(ref, host, query)
        pid = locks.holder(self.runs.dir(ref) / LOCK)
        if pid is None:
            return plan
        return replace(plan, problems=[f"a recovery of it is under way (PID {pid}): wait for it", *plan.problems])

    def _plan(self, ref: str, host: str | None, query: str | None) -> RecoveryPlan:
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
                wait_ready_s: float = 900.0, poll_s: float = 10.0, offer: str | None = None) -> Recovered:
        """Rent the planned offer (or use `host`), wait for its SSH, upload the run dir with the newest
        good checkpoint, resume there. A box rented here is new by definition: its host key is accepted.

        `offer`: the offer the user confirmed; when the plan now picks another (a price changed, it was
        rented meanwhile), nothing is rented and the user asked again. One recovery of a run at a time."""
        run_dir = self.runs.dir(ref)
        try:
            with locks.exclusive(run_dir / LOCK):
                return self._recover(ref, host, query, accept_new_host_key, progress, wait_ready_s, poll_s, offer)
        except locks.Busy as exc:
            raise ZeldaError(f"{run_dir.name}: a recovery of it is under way (PID {exc.pid}): nothing rented") from None

    def _recover(self, ref: str, host: str | None, query: str | None, accept_new_host_key: bool | str,
                 progress: Progress, wait_ready_s: float, poll_s: float, offer: str | None) -> Recovered:
        plan = self._plan(ref, host, query)
        if plan.problems:
            raise ZeldaError(f"{plan.run}: stays lost: " + "; ".join(plan.problems))
        picked = plan.offer.offer.key if plan.offer is not None else None
        if offer is not None and picked != offer:
            raise ZeldaError(f"{plan.run}: the plan changed since it was shown ({offer} → {picked or 'no offer'}): "
                             "nothing rented; look at the new plan and confirm again")
        for line in plan.skipped:
            progress(f"warning: {line}: resuming from the previous good checkpoint")
        run_dir = self.runs.dir(ref)
        old_host = self.runs.info(run_dir).host
        left = self.instances.for_host(old_host) or self.instances.box_gone(old_host)
        moves = self.history(run_dir)
        heard = runs.read_status(run_dir)  # the box left, as last heard from: before box B's status arrives
        since = moves[-1].get("t") if moves else (heard.started if heard and heard.started else None)
        since = since or (left.started if left else None)  # else when its instance was rented
        until = heard.heartbeat if heard and heard.heartbeat else None
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
            items = [box_files.transfer(run_dir / f, posixpath.join(remote_dir, f)) for f in LOGS
                     if (run_dir / f).is_file()]  # the logs go on where they end here: the mirror's offsets hold
            if plan.from_checkpoint is not None:
                ckpt = run_dir / plan.from_checkpoint
                items += [box_files.transfer(p, posixpath.join(remote_dir, plan.from_checkpoint,
                                                               p.relative_to(ckpt).as_posix()))
                          for p in sorted(ckpt.rglob("*")) if p.is_file()]
            box_files.upload(session, items, f"upload {run_dir.name} ({plan.from_checkpoint or 'no checkpoint'})",
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
                               "left_since": since, "left_until": until,
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
    def stays(cls, view: RunView) -> list[BoxStay]:
        """Each box the run has been on, oldest first; none when it never left its first box. The box it
        is on now has its current instance and spend (the view's)."""
        moves = cls.history(view.run_dir)
        if not moves:
            return []
        out = []
        for i, m in enumerate(moves):
            prev = moves[i - 1] if i else None
            resumed = "started here" if prev is None else _resumed(prev)
            out.append(BoxStay(str(m.get("left")), m.get("left_instance"), m.get("left_since"),
                               m.get("left_until") or m.get("t"), m.get("left_spent_usd"), resumed))
        last = moves[-1]
        until = None if view.state.is_live else (view.finished or view.heartbeat)  # gone or done: last heard
        out.append(BoxStay(view.host, view.instance, last.get("t"), until, view.spent_usd, _resumed(last)))
        return out

    @classmethod
    def history_line(cls, view: RunView, now: float | None = None) -> str | None:
        """`box-a (started here, 1h00m, $2.00) → box-b (from checkpoint-3, 4m10s so far, $0.05)` for train
        status (the Runs screen shows one box a line)."""
        now = time.time() if now is None else now
        parts = [f"{s.host} ({s.resumed}, {s.span(now)}"
                 + (f", ${s.spent_usd:,.2f}" if s.spent_usd is not None else "") + ")" for s in cls.stays(view)]
        return " → ".join(parts) or None

    # --- [recovery] auto ------------------------------------------------------------------------
    def auto(self, ref: str, alert: Progress) -> Recovered | None:
        """A run found lost while followed goes on elsewhere without asking, when `[recovery] auto` says so:
        only within budget.max_total_usd (it must be set: this spends without a confirm) and at most
        `max_recoveries` times per run (counted in boxes.jsonl). Each outcome is an alert with the numbers."""
        rec = self.config.recovery
        if not rec.auto:
            return None
        run_dir = self.runs.dir(ref)
        name, done = run_dir.name, len(self.history(run_dir))
        by_hand = f"`zelda-tui train recover {name}` goes on by hand"
        if self.config.budget.max_total_usd is None:
            alert(f"{name}: stays lost: [recovery] auto rents only within budget.max_total_usd, which is not set; "
                  f"{by_hand}")
            return None
        if done >= rec.max_recoveries:
            alert(f"{name}: stays lost: recovered {done} time(s) already, [recovery] max_recoveries = "
                  f"{rec.max_recoveries}; {by_hand}")
            return None
        if (pid := locks.holder(run_dir / LOCK)) is not None:
            alert(f"{name}: not recovered automatically: a recovery of it is under way (PID {pid})")
            return None
        try:
            plan = self.plan(ref)
            if plan.problems:
                raise ZeldaError("; ".join(plan.problems))
            alert(f"{name}: recovering automatically ({done + 1} of at most {rec.max_recoveries}): {plan.brief()}")
            moved = self.recover(ref, offer=plan.offer.offer.key if plan.offer else None)
        except Exception as exc:  # an alert, never a dead follower: the run stays lost, the way on is named
            alert(f"{name}: stays lost: automatic recovery failed: {exc}; {by_hand}")
            return None
        alert(moved.line())
        return moved


def _resumed(move: dict[str, Any]) -> str:
    """Where a move picked the run up: its checkpoint, or step 0 when none had come home."""
    return f"from checkpoint-{move['from_step']}" if move.get("from_step") is not None else "from step 0"
