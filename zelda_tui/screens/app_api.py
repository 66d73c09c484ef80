"""What screens ask of the app beyond Textual's `App`, typed: screens sit below `zelda_tui.app`
and cannot import `ZeldaApp`, so they reach its extras through this protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from textual.app import App
from textual.dom import DOMNode


@runtime_checkable
class ZeldaAppApi(Protocol):
    """Implemented by `ZeldaApp`."""

    def report_error(self, exc: BaseException, what: str) -> None: ...

    def copy_text(self, text: str, what: str) -> None: ...


def zelda_app(node: DOMNode) -> ZeldaAppApi:
    """The running app of `node`, as the zelda-tui app."""
    app: App = node.app
    if not isinstance(app, ZeldaAppApi):
        raise TypeError(f"{type(app).__name__} is not the zelda-tui app (no report_error/copy_text)")
    return app


def report_from_thread(node: DOMNode, exc: BaseException, what: str) -> None:
    """A worker thread's failure as the app's one-line error message, posted to the UI thread."""
    app = zelda_app(node)
    node.app.call_from_thread(app.report_error, exc, what)
