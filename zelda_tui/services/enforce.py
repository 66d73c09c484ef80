"""What `[budget]` promises, enforced: instances held too long, or idle after their last run, destroyed."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..core import eval_worker
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.offers import held_hours, spent_usd
from ..core.store import Store
from .hosts import Hosts
from .instances import InstanceRegistry
from .runs import RunService
from .views import EnforceAction


@dataclass
class BudgetEnforcer:
    """Destroys tracked instances the config says must not keep running (`instances enforce`, and
    the app every minute)."""

    config: Config
    store: Store
    instances: InstanceRegistry
    runs: RunService

    def enforce(self, dry_run: bool = False) -> list[EnforceAction]:
        """Destroy what the config says must not keep running (what `budget` promises, enforced):

        * an instance held longer than `budget.max_runtime_hours`;
        * with `budget.on_idle = "destroy"`: an instance whose runs (remote runs on its SSH
          endpoint) have all ended more than `monitoring.gpu_idle_shutdown_minutes` ago.

        Returns one row per instance acted on (or, with dry_run, that would be), with the reason.
        Every instance is tried even when one fails: a failed row has `error` set.
        """
        max_hours = self.config.budget.max_runtime_hours
        grace_s = self.config.monitoring.gpu_idle_shutdown_minutes * 60
        on_idle = self.config.budget.on_idle
        now = time.time()
        remote_runs = [r for r in self.store.run_rows() if Hosts.is_remote(r["host"], r.get("remote_dir"))]
        instance_of = ({r["name"]: self._instance_key(r["host"]) for r in remote_runs}
                       if on_idle == "destroy" else {})  # each run's host resolved once, not once per instance
        acted = []
        for inst in self.store.instance_rows():
            if inst["ended"] is not None:
                continue
            hours = held_hours(inst, now)
            reason = None
            if max_hours is not None and hours > max_hours:
                reason = f"held {hours:.1f} h, past budget.max_runtime_hours = {max_hours:g}"
            elif on_idle == "destroy":
                mine = [r for r in remote_runs if instance_of[r["name"]] == inst["key"]]
                infos = [self.runs.info(Path(r["run_dir"]), r) for r in mine]
                workers = [w for r in mine for w in eval_worker.workers(Path(r["run_dir"])).values()]  # as last mirrored
                if infos and all(not i.state.is_live for i in infos) and not any(w.working for w in workers):
                    ended = max([(i.finished or i.heartbeat or inst["started"]) for i in infos]
                                + [w.heartbeat for w in workers])  # an eval on the box is work too
                    if now - ended > grace_s:
                        last = max(infos, key=lambda i: i.finished or i.heartbeat or 0)
                        reason = (f"idle {(now - ended) / 60:.0f} min since its last run {last.name} ended "
                                  f"({last.state}); budget.on_idle = \"destroy\"")
            if reason is None:
                continue
            action = EnforceAction(key=inst["key"], reason=reason, destroyed=False, state=inst["state"],
                                   spent_usd=round(spent_usd(inst, now), 2))
            if not dry_run:
                try:
                    done = self.instances.destroy(inst["key"])
                    spent = done.spent_usd if done.spent_usd is not None else action.spent_usd
                    action = replace(action, destroyed=True, state=done.state, spent_usd=spent)
                except ZeldaError as exc:
                    action = replace(action, error=str(exc))
            acted.append(action)
        return acted

    def _instance_key(self, host: str) -> str | None:
        inst = self.instances.for_host(host)
        return inst.key if inst is not None else None
