"""While a remote run is followed: GPU idle and disk on its box, acted on as `[monitoring]` and
`[budget] on_idle` say (alert, or destroy the tracked instance behind the host)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from ..backends import box_files, remote_runs
from ..core.config import Config
from ..core.errors import ZeldaError
from ..core.idle_watch import IdleWatch
from .instances import InstanceRegistry

if TYPE_CHECKING:
    from ..backends.ssh import SshSession


def box_watch(config: Config, instances: InstanceRegistry, settings: remote_runs.RemoteSettings, host: str,
              alert: Callable[[str], None]) -> tuple[Callable[[SshSession], None], float]:
    """The mirror's periodic check of `host` and how often it runs: GPU idle → alert, then
    budget.on_idle ("alert" or "destroy" the tracked instance); remote disk past
    disk_warning_percent → a warning (once per crossing)."""
    mon, on_idle = config.monitoring, config.budget.on_idle
    watch = IdleWatch(mon.gpu_idle_threshold_percent, mon.gpu_idle_alert_minutes * 60, mon.gpu_idle_shutdown_minutes * 60)
    every, disk_limit, nvidia_smi = mon.check_every_s, mon.disk_warning_percent, mon.nvidia_smi
    disk_warned = [False]

    def tick(session: SshSession) -> None:
        _, used = box_files.disk_usage(session, settings.training_dir)
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
        instance = instances.for_host(host)
        if instance is None:
            alert(idle + " — no tracked instance for this host, nothing destroyed")
            watch.acted_on()
            return
        try:
            done = instances.destroy(instance.key)
        except ZeldaError as exc:  # the provider said no: keep following, try again at the next check
            alert(idle + f" — could not destroy {instance.key}, it is still billing ({exc}); "
                  f"trying again in {every:g} s")
            return
        watch.acted_on()
        alert(idle + f" — destroyed {done.key} (spent ${done.spent_usd:.2f})")

    return tick, every
