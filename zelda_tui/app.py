"""The Textual app: five modes on keys 1-5, `?` for the keys, one error handler.

The app is handed a `Services` object (services.build_services) — the same one the CLI uses —
and every screen reaches the outside world only through it.
"""

from __future__ import annotations

from typing import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from .screens.inventory import InventoryScreen
from .screens.leaderboard import LeaderboardScreen
from .screens.mix import MixScreen
from .screens.offers import OffersScreen
from .screens.runs import RunsScreen
from .services import Services

ENFORCE_EVERY_S = 60.0  # the budget rules (max runtime, idle after the last run) while the app is open

SCREENS_BY_MODE = {
    "inventory": ("1", "Inventory", InventoryScreen),
    "mix": ("2", "Mix", MixScreen),
    "offers": ("3", "Offers", OffersScreen),
    "runs": ("4", "Runs", RunsScreen),
    "leaderboard": ("5", "Leaderboard", LeaderboardScreen),
}


class ZeldaApp(App):
    """zelda-tui: datasets → mix → GPU offer → train → tail → eval → leaderboard."""

    TITLE = "zelda-tui"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        *(
            Binding(key, f"switch_mode('{mode}')", label, id=f"mode.{mode}", tooltip=f"Go to the {label} screen")
            for mode, (key, label, _) in SCREENS_BY_MODE.items()
        ),
        Binding("question_mark", "toggle_help", "Keys", id="app.help", tooltip="Show or hide the key bindings"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit zelda-tui"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        services.prepare_for_ui()
        for mode, (_, _, screen_cls) in SCREENS_BY_MODE.items():
            self.add_mode(mode, lambda cls=screen_cls: cls(self.services))
        if services.config.keymap:
            self.set_keymap(services.config.keymap)

    def on_mount(self) -> None:
        path = self.services.config.path
        self.sub_title = f"{path.parent.name}/{path.name}"
        self.switch_mode("inventory")
        self._remind_running_instances()
        self.set_interval(ENFORCE_EVERY_S, self._enforce_budget)

    @work(thread=True, group="budget", exclusive=True, exit_on_error=False)
    def _enforce_budget(self) -> None:
        """While the app is open it applies the budget rules itself (`instances enforce` does it from cron)."""
        try:
            acted = self.services.instances_enforce()
        except Exception as exc:
            self.call_from_thread(self.report_error, exc, "budget check failed")
            return
        for row in acted:
            if row["error"]:  # tried again at the next check
                self.call_from_thread(self.notify, f"could not destroy {row['key']} ({row['reason']}): {row['error']}",
                                      title="Budget", severity="error", timeout=30)
                continue
            self.call_from_thread(self.notify, f"destroyed {row['key']} (${row['spent_usd']:.2f}): {row['reason']}",
                                  title="Budget", severity="warning", timeout=30)

    def _remind_running_instances(self) -> None:
        """Rented GPUs cost money while the app is closed: say so at start (from SQLite, no network)."""
        running = [r for r in self.services.instances_list(refresh=False) if r["ended"] is None]
        if running:
            spent = sum(r["spent_usd"] for r in running)
            names = ", ".join(f"{r['key']} ({r['num_gpus']} x {r['gpu_name']}, ${r['dph_total']:.2f}/h)" for r in running[:3])
            self.notify(f"{len(running)} tracked instance(s) still running, ${spent:.2f} so far: {names}",
                        title="GPU instances", severity="warning", timeout=15)

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, (key, label, _) in SCREENS_BY_MODE.items():
            yield SystemCommand(f"Go to {label}", f"Switch to the {label} screen (key {key})",
                                lambda mode=mode: self.switch_mode(mode))
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()

    def report_error(self, exc: BaseException, what: str) -> None:
        """The one place failures become a message for the user (one line, no traceback)."""
        message = str(exc) or type(exc).__name__
        self.notify(f"{what}: {message}", title="Error", severity="error", timeout=10)
