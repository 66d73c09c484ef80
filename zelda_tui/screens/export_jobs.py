"""Exporting from a screen (the Runs and Leaderboard `x` key): `ExportsFromScreen` asks with the
export dialog and runs `services.export.export` on the screen's thread worker, which posts its
progress and its end to the screen as messages (as the Leaderboard's eval does); the screen only
says which checkpoint to offer and how to show the progress.

One export at a time per (workspace, run, checkpoint), across screens: two export programs
writing the same export dir would spoil each other, so a second start says so and does nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from textual import work
from textual.message import Message
from textual.message_pump import MessagePump

from ..core.errors import ZeldaError
from ..services import Services
from ..services import export as export_service
from ..services.export import ExportView
from ..widgets.export_dialog import ExportChoice, ExportDialog

Key = tuple[str, str, str]  # (config path, run, checkpoint)
_running: dict[Key, str] = {}  # each export running in this process -> its latest progress line
_lock = threading.Lock()


class ExportProgress(Message):
    def __init__(self, choice: ExportChoice, text: str) -> None:
        super().__init__()
        self.choice, self.text = choice, text


class ExportDone(Message):
    """The end of an export: its view, or the one-line reason it did not happen (`started` False:
    the same checkpoint was being exported already, and that one goes on)."""

    def __init__(self, choice: ExportChoice, view: ExportView | None, error: str | None, started: bool = True) -> None:
        super().__init__()
        self.choice, self.view, self.error, self.started = choice, view, error, started


def running(services: Services, run: str, checkpoint: str) -> str | None:
    """The latest progress line of the export of `run`'s `checkpoint` (as named), None when none runs."""
    with _lock:
        return _running.get(_key(services, run, checkpoint))


def _key(services: Services, run: str, checkpoint: str) -> Key:
    name = checkpoint.strip().lower()
    return (str(services.config.path), run, f"checkpoint-{int(name)}" if name.isdigit() else name)


def _claim(services: Services, choice: ExportChoice) -> Key | None:
    """Mark the export as running, by the checkpoint it resolves to (`best` is some checkpoint-N);
    None when that one is running already."""
    checkpoint = choice.checkpoint
    try:
        checkpoint = services.export.resolve_checkpoint(services.runs.dir(choice.run), checkpoint)
    except ZeldaError:
        pass  # the export itself says why (or, for a remote run, finds it on the box)
    key = _key(services, choice.run, checkpoint)
    with _lock:
        if key in _running:
            return None
        _running[key] = "starting…"
    return key


def run_export(node: MessagePump, services: Services, choice: ExportChoice, cancel: threading.Event) -> None:
    """The body of a screen's export worker (a thread): blocks for the whole export."""
    key = _claim(services, choice)
    if key is None:
        node.post_message(ExportDone(choice, None, f"{choice.run} {choice.checkpoint} is being exported already: "
                                                   "its progress is in the status line", started=False))
        return

    def progress(text: str) -> None:
        with _lock:
            _running[key] = text
        node.post_message(ExportProgress(choice, text))

    view, error = None, None
    progress("starting…")
    try:
        view = services.export.export(choice.run, checkpoint=choice.checkpoint, gguf=choice.gguf,
                                      gguf_pre=choice.gguf_pre, progress=progress, cancel=cancel)
    except Exception as exc:  # one line for the user, whatever failed
        error = str(exc) or type(exc).__name__
    finally:
        with _lock:
            _running.pop(key, None)
    node.post_message(ExportDone(choice, view, error))


def done_text(view: ExportView) -> str:
    """Where the files are and how they verified: the merged logits against the tolerance, and
    each GGUF's greedy answers against the merged model's."""
    lines = [f"{view.checkpoint} of {view.run} → {view.path}"]
    merged = view.merged or {}
    if merged:
        verdict = "verified" if merged.get("ok") else "NOT verified"
        lines.append(f"merged: {verdict}, logits max diff {merged.get('max_abs_diff')} vs base + adapter "
                     f"(tolerance {merged.get('tolerance')})")
    for kind, g in view.gguf.items():
        lines.append(f"gguf {kind}: {g.get('same')}/{g.get('prompts')} greedy answers same as the merged model's")
    return "\n".join(lines)


def known_types() -> list[str]:
    """The GGUF types an export knows (the dialog checks what is typed against them)."""
    return list(export_service.GGUF_TYPES)


class ExportsFromScreen:
    """The `x` flow of a screen (mixed into a Screen that has `services`): ask, export on a thread
    worker, show progress through `_exports_changed`, notify the end. `exporting` holds each running
    export's latest progress line by (run, checkpoint); `_export_cancel` is set when the app quits."""

    services: Services
    exporting: dict[tuple[str, str], str]
    _export_cancel: threading.Event
    notify: Any
    app: Any

    def _exports_changed(self) -> None:
        """Show `exporting` (the screen's status line)."""
        raise NotImplementedError

    def _ask_export(self, run: str, checkpoint: str | None) -> None:
        if checkpoint is None:
            self.notify(f"{run} has no checkpoint to export yet", severity="warning", markup=False)
            return
        busy = running(self.services, run, checkpoint)
        if busy is not None:
            self.notify(f"{run} {checkpoint} is being exported: {busy}", severity="warning", timeout=5, markup=False)
            return

        def chosen(choice: ExportChoice | None) -> None:
            if choice is not None:
                self._export(choice)

        self.app.push_screen(ExportDialog(run, checkpoint, known_types()), chosen)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, choice: ExportChoice) -> None:
        run_export(self, self.services, choice, self._export_cancel)  # type: ignore[arg-type]  # a Screen

    def on_export_progress(self, msg: ExportProgress) -> None:
        self.exporting[(msg.choice.run, msg.choice.checkpoint)] = msg.text
        self._exports_changed()

    def on_export_done(self, msg: ExportDone) -> None:
        if not msg.started:
            self.notify(msg.error or "", severity="warning", timeout=5, markup=False)
            return
        self.exporting.pop((msg.choice.run, msg.choice.checkpoint), None)
        self._exports_changed()
        if msg.view is None:
            self.notify(msg.error or "export failed", title=f"Export of {msg.choice.run} {msg.choice.checkpoint}",
                        severity="error", timeout=15, markup=False)
            return
        self.notify(done_text(msg.view), title=f"Exported {msg.view.run}", timeout=20, markup=False)
