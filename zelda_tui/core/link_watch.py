"""When a followed box's SSH link was last up, and whether it has been down long enough to call
the box lost ([recovery] lost_after_minutes).

The mirror reports its link's state changes; "connected" means the link works, every
"reconnecting" means a try failed. The link counts as up until the first failure after it was
connected; a follower that never got through counts from its own first failure (it cannot know
how long the box was gone before it started). A box that answers again is no longer lost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinkWatch:
    lost_after_s: float
    last_up: float | None = None  # the link worked until then
    down_since: float | None = None  # the first failed try of this outage

    def up(self, now: float) -> None:
        self.last_up, self.down_since = now, None

    def down(self, now: float) -> bool:
        """A failed try at `now`: whether the box is lost (down for lost_after_s or longer)."""
        if self.down_since is None:
            self.down_since = now
            if self.last_up is not None:
                self.last_up = now
        since = self.last_up if self.last_up is not None else self.down_since
        return now - since >= self.lost_after_s

    def down_for(self, now: float) -> float:
        """Seconds since the link last worked (0 while it works)."""
        if self.down_since is None:
            return 0.0
        return now - (self.last_up if self.last_up is not None else self.down_since)
