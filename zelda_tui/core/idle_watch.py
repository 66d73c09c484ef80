"""GPU idle watch: utilisation samples in, "alert" then "act" out, once each per idle stretch.

A rented GPU that sits idle (a run finished or hung) costs the same as a busy one. While a
run is followed, the box's GPU utilisation is sampled; below the threshold on every GPU for
`alert_after_s` raises an alert, for `act_after_s` asks for the configured action (alert
again, or destroy the instance). Any busy sample starts over.

"act" repeats at every check until the caller says it was done (`acted_on`): a destroy that
failed (the provider answered 503) is tried again at the next check, never marked done unseen.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IdleWatch:
    threshold_percent: float = 5.0
    alert_after_s: float = 15 * 60
    act_after_s: float = 30 * 60
    idle_since: float | None = None
    alerted: bool = False
    acted: bool = False

    def feed(self, now: float, utilisation: list[float]) -> str | None:
        """One sample (percent per GPU); returns "alert", "act" or None. No GPUs: nothing to watch."""
        if not utilisation or max(utilisation) >= self.threshold_percent:
            self.idle_since, self.alerted, self.acted = None, False, False
            return None
        if self.idle_since is None:
            self.idle_since = now
        idle = now - self.idle_since
        if idle >= self.act_after_s and not self.acted:
            self.alerted = True
            return "act"
        if idle >= self.alert_after_s and not self.alerted:
            self.alerted = True
            return "alert"
        return None

    def idle_for(self, now: float) -> float:
        return 0.0 if self.idle_since is None else now - self.idle_since

    def acted_on(self) -> None:
        """The action for this idle stretch was carried out: no more "act" until the GPU was busy again."""
        self.acted = True
