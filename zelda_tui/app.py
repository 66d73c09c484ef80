"""The Textual app: five modes on keys 1-5, `?` for the keys, one error handler, one `notify`.

The app is handed a `Services` object (services.build_services) — the same one the CLI uses —
and every screen reaches the outside world only through it.

Every message goes through `ZeldaApp.notify` (screens' `self.notify` too): the text is shown as
written (never read as markup: `pip install -e '.[train]'` keeps its `[train]`) and kept for the
messages screen (`N`), since toasts vanish after seconds.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from textual import work
from textual.actions import SkipAction
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.markup import escape
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input

from .screens.inventory import InventoryScreen
from .screens.leaderboard import LeaderboardScreen
from .screens.mix import MixScreen
from .screens.offers import OffersScreen
from .screens.runs import RunsScreen
from .services import Services
from .widgets.keys_help import KeysScreen
from .widgets.notifications import Note, NotificationsScreen

ENFORCE_EVERY_S = 60.0  # the budget rules (max runtime, idle after the last run) while the app is open

SCREENS_BY_MODE: dict[str, tuple[str, str, Callable[[Services], Screen]]] = {
    "inventory": ("1", "Inventory", InventoryScreen),
    "mix": ("2", "Mix", MixScreen),
    "offers": ("3", "Offers", OffersScreen),
    "runs": ("4", "Runs", RunsScreen),
    "leaderboard": ("5", "Leaderboard", LeaderboardScreen),
}


def binding_ids() -> set[str]:
    """Every binding id of the app, its screens and dialogs (their `Binding(id=...)`): what [keys] may name."""
    ids: set[str] = set()
    todo: list[type] = [DOMNode]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        ids.update(b.id for b in vars(cls).get("BINDINGS", ()) if isinstance(b, Binding) and b.id)
    return ids


class ZeldaApp(App):
    """zelda-tui: datasets → mix → GPU offer → train → tail → eval → leaderboard."""

    TITLE = "zelda-tui"
    CSS_PATH = "app.tcss"
    # The footer shows the screen's own keys and `?`; screens, quit, messages and mouse are behind `?`.
    BINDINGS = [
        *(
            Binding(key, f"switch_mode('{mode}')", label, id=f"mode.{mode}", tooltip=f"Go to the {label} screen",
                    show=False)
            for mode, (key, label, _) in SCREENS_BY_MODE.items()
        ),
        Binding("question_mark", "toggle_help", "Keys", id="app.help", tooltip="Show every key with its id (for [keys] remapping)"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit zelda-tui", show=False),
        Binding("N", "notifications", "Messages", id="app.messages", tooltip="Every message of this session with its time and full text", show=False),
        Binding("M", "toggle_mouse", "Mouse", id="app.mouse", tooltip="Mouse capture on/off (off: the terminal selects text, e.g. over SSH)", show=False),
        Binding("escape", "leave_input", "Leave field", id="app.leave_input", tooltip="Leave a text field: back to the screen's table", show=False, priority=True),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.notes: list[Note] = []  # every notification of this session (the messages screen)
        self.mouse_enabled = services.config.ui.mouse
        services.prepare_for_ui()
        for mode, (_, _, screen_cls) in SCREENS_BY_MODE.items():
            self.add_mode(mode, self._opener(screen_cls))
        keys = services.config.keys
        keys.check_ids(binding_ids())  # a ConfigError naming the [keys] line, before the screen opens
        if keys.bindings:
            self.set_keymap(keys.keymap)

    def _opener(self, screen_cls: Callable[[Services], Screen]) -> Callable[[], Screen]:
        """A mode's screen, built with the app's services when the mode first opens."""
        return lambda: screen_cls(self.services)

    def on_mount(self) -> None:
        path = self.services.config.path
        self.sub_title = f"{path.parent.name}/{path.name}"
        self._apply_ui_settings()
        self.switch_mode("inventory")
        self._remind_running_instances()
        self.set_interval(ENFORCE_EVERY_S, self._enforce_budget)

    @work(thread=True, group="budget", exclusive=True, exit_on_error=False)
    def _enforce_budget(self) -> None:
        """While the app is open it applies the budget rules itself (`instances enforce` does it from cron)."""
        try:
            acted = self.services.enforcer.enforce()
        except Exception as exc:
            self.call_from_thread(self.report_error, exc, "budget check failed")
            return
        for row in acted:
            if row.error:  # tried again at the next check
                self.call_from_thread(self.notify, f"could not destroy {row.key} ({row.reason}): {row.error}",
                                      title="Budget", severity="error", timeout=30)
                continue
            self.call_from_thread(self.notify, f"destroyed {row.key} (${row.spent_usd:.2f}): {row.reason}",
                                  title="Budget", severity="warning", timeout=30)

    def _remind_running_instances(self) -> None:
        """Rented GPUs cost money while the app is closed: say so at start (from SQLite, no network)."""
        running = [r for r in self.services.instances.rows(refresh=False) if r.running]
        if running:
            spent = sum(r.spent_usd or 0 for r in running)
            names = ", ".join(f"{r.key} ({r.num_gpus} x {r.gpu_name}, ${r.dph_total:.2f}/h)" for r in running[:3])
            self.notify(f"{len(running)} tracked instance(s) still running, ${spent:.2f} so far: {names}",
                        title="GPU instances", severity="warning", timeout=15)

    # --- messages -------------------------------------------------------------------------
    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Show `message` as written and keep it for the messages screen (thread-safe, as Textual's).

        `markup` is ignored on purpose: messages carry user, provider and pip text, never markup."""
        self.notes.append(Note(time.time(), severity, title, message))
        super().notify(escape(message), title=title, severity=severity, timeout=timeout, markup=True)

    def action_notifications(self) -> None:
        if not isinstance(self.screen, NotificationsScreen):
            self.push_screen(NotificationsScreen(self.notes))

    # --- keys ------------------------------------------------------------------------------
    def action_toggle_help(self) -> None:
        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss()
            return
        rows, seen = [], set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not (binding.id or binding.show) or (binding.id, binding.action) in seen:
                continue
            seen.add((binding.id, binding.action))
            rows.append((self.get_key_display(binding), binding.id or "—", active.tooltip or binding.description))
        self.push_screen(KeysScreen(self.screen.title or "zelda-tui", rows))

    def action_leave_input(self) -> None:
        """Escape in a text field: focus goes back to the screen's table, so 1-5 switch screens again.

        Dialogs keep their own Escape (cancel); anywhere else the key goes on to the screen."""
        if isinstance(self.screen, ModalScreen) or not isinstance(self.focused, Input):
            raise SkipAction()
        tables = [t for t in self.screen.query(DataTable) if t.display]
        if tables:
            tables[0].focus()
        else:
            self.screen.set_focus(None)

    # --- terminal comfort ([ui] in config.toml) ----------------------------------------------
    def _apply_ui_settings(self) -> None:
        ui = self.services.config.ui
        if ui.theme:
            if ui.theme in self.available_themes:
                self.theme = ui.theme
            else:
                self.notify(f"[ui] theme = {ui.theme!r} is not a theme here; using {self.theme}", severity="warning")
        if not self.mouse_enabled:
            self._set_mouse(False)
        self.theme_changed_signal.subscribe(self, self._save_theme)

    def _save_theme(self, theme) -> None:
        """The theme picked (palette: "Change theme") is the one the next start uses: `[ui] theme`."""
        if theme.name == self.services.config.ui.theme:
            return
        try:
            self.services.config.set_ui("theme", theme.name)
            self.services.config.save()
        except Exception as exc:
            self.report_error(exc, "saving the theme failed")

    def _set_mouse(self, on: bool) -> None:
        """Mouse reporting on or off in the terminal (Textual's driver knows the escape codes)."""
        self.mouse_enabled = on
        switch = getattr(self._driver, "_enable_mouse_support" if on else "_disable_mouse_support", None)
        if switch is not None:  # the headless driver of tests has none
            switch()

    def action_toggle_mouse(self) -> None:
        self._set_mouse(not self.mouse_enabled)
        self.notify("mouse capture on: click and scroll in the app" if self.mouse_enabled else
                    "mouse capture off: select and copy text with the terminal (M: on again; [ui] mouse in config.toml)",
                    title="Mouse", timeout=5)

    def copy_text(self, text: str, what: str) -> None:
        """Put `text` on the clipboard (OSC 52: works over SSH in most terminals) and say so."""
        self.copy_to_clipboard(text)
        self.notify(f"{what}: {text}", title="Copied", timeout=4)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, (key, label, _) in SCREENS_BY_MODE.items():
            yield SystemCommand(f"Go to {label}", f"Switch to the {label} screen (key {key})",
                                lambda mode=mode: self.switch_mode(mode))
        yield SystemCommand("Messages", "Every message of this session with its time and full text (key N)",
                            self.action_notifications)
        yield SystemCommand("Toggle mouse capture", "Off: the terminal selects and copies text, e.g. over SSH (key M)",
                            self.action_toggle_mouse)
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()

    def report_error(self, exc: BaseException, what: str) -> None:
        """The one place failures become a message for the user (one line, no traceback)."""
        message = str(exc) or type(exc).__name__
        self.notify(f"{what}: {message}", title="Error", severity="error", timeout=10)
