"""``%cometimg_key``: ask for the API key without it ever being shown, saved or logged.

A masked ``getpass`` prompt where the frontend can answer input requests (JupyterLab, Notebook,
VS Code, terminal IPython). Where it cannot (a kernel whose frontend has no stdin), an
ipywidgets ``Password`` box and a button; the box is emptied as soon as the key is taken so the
key is not left in widget state that a notebook could save.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

from cometnb._core.errors import ValidationError
from cometnb._core.settings import set_session_key

__all__ = ["KEY_SET", "ask_for_key", "key_widget", "store_key"]

KEY_SET = "key set (held in memory for this kernel only)"
NO_KEY = "no key entered; nothing changed"
PROMPT = "CometAPI key: "


def store_key(key: str | None) -> str:
    """Hold ``key`` for this process; return the message to show (never the key)."""
    if not key or not key.strip():
        return NO_KEY
    try:
        set_session_key(key)
    except ValidationError as exc:  # too short to be a real key: say so, keep nothing
        return exc.message
    return KEY_SET


def _stdin_available(shell: Any) -> bool:
    kernel = getattr(shell, "kernel", None)
    # ipykernel sets _allow_stdin per execute request from the frontend's allow_stdin flag.
    return kernel is None or bool(getattr(kernel, "_allow_stdin", True))


def ask_for_key(
    shell: Any,
    *,
    write: Callable[[str], None] = print,
    show_widget: Callable[[], None] | None = None,
) -> None:
    """Prompt for the key (masked) and store it; fall back to a widget without stdin."""
    from IPython.core.error import StdinNotImplementedError

    widget = show_widget or _show_key_widget
    if not _stdin_available(shell):
        widget()
        return
    try:
        # Looked up at call time: ipykernel swaps getpass.getpass for its own while executing.
        key = getpass.getpass(PROMPT)
    except StdinNotImplementedError:
        widget()
        return
    write(store_key(key))


def key_widget() -> Any:
    """A password box and a "Set key" button (an ``ipywidgets.HBox``)."""
    import ipywidgets as widgets

    box = widgets.Password(placeholder="CometAPI key", description="Key:")
    button = widgets.Button(description="Set key", button_style="primary")
    message = widgets.Label()

    def on_click(_button: Any) -> None:
        key, box.value = box.value, ""  # empty the box at once: widget state can be saved
        message.value = store_key(key)
        if message.value == KEY_SET:
            box.disabled = button.disabled = True

    button.on_click(on_click)
    return widgets.HBox([box, button, message])


def _show_key_widget() -> None:
    from IPython import display as ipython_display

    display: Any = ipython_display.display
    display(key_widget())
