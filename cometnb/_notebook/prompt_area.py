"""The panel's prompt box: a textarea that also reports Shift+Enter (which presses Generate).

ipywidgets' ``Textarea`` sends no key events, and ipyevents listens on the whole widget (it
takes focus and stops every keydown), so this is a small anywidget: the front end (an ES
module kept here as a string) renders one ``<textarea>``, keeps ``value`` in step with the
kernel, and on Shift+Enter sends ``{"event": "submit"}`` instead of inserting a newline; any
other key (plain Enter included) behaves as in any textarea.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

__all__ = ["PromptArea"]

_ESM = """
function render({ model, el }) {
  const area = document.createElement("textarea");
  area.className = "cometnb-prompt-input";
  area.value = model.get("value");
  area.placeholder = model.get("placeholder");
  area.rows = model.get("rows");
  const push = () => { model.set("value", area.value); model.save_changes(); };
  area.addEventListener("input", push);
  const onKey = (event) => {
    if (event.target !== area || event.key !== "Enter" || !event.shiftKey) return;
    if (event.isComposing) return;
    event.preventDefault();  // no newline
    event.stopPropagation();  // and the notebook does not run the cell
    push();  // the text typed so far reaches the kernel before the submit
    model.send({ event: "submit" });
  };
  // On window, capture phase: Notebook 7 matches its shortcuts in the capture phase on the
  // document, so a listener on the textarea would hear Shift+Enter after the cell had run.
  window.addEventListener("keydown", onKey, true);
  model.on("change:value", () => {
    if (area.value !== model.get("value")) area.value = model.get("value");
  });
  model.on("change:placeholder", () => { area.placeholder = model.get("placeholder"); });
  model.on("change:rows", () => { area.rows = model.get("rows"); });
  el.appendChild(area);
  return () => window.removeEventListener("keydown", onKey, true);
}
export default { render };
"""

_CSS = """
.cometnb-prompt-input {
  box-sizing: border-box; width: 100%; resize: vertical; margin: 2px 0;
  padding: 4px 8px; font-family: inherit;
  font-size: var(--jp-widgets-font-size, 13px);
  color: var(--jp-widgets-input-color, inherit);
  background: var(--jp-widgets-input-background-color, #fff);
  border: var(--jp-widgets-input-border-width, 1px) solid
          var(--jp-widgets-input-border-color, #9e9e9e);
}
.cometnb-prompt-input:focus { border-color: var(--jp-widgets-input-focus-border-color, #64b5f6); }
"""


class PromptArea(anywidget.AnyWidget):
    """A multi-line text box whose Shift+Enter calls the ``on_submit`` callbacks.

    Example::

        >>> box = PromptArea(placeholder="Describe the image…")
        >>> seen = []
        >>> box.on_submit(lambda area: seen.append(area.value))
        >>> box.value = "a lighthouse"
        >>> box.submit()
        >>> seen
        ['a lighthouse']
    """

    _esm = _ESM
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.Int(3).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_submit: list[Callable[[PromptArea], object]] = []
        self.on_msg(self._on_message)

    def on_submit(self, callback: Callable[[PromptArea], object]) -> None:
        """Call ``callback(self)`` when the user presses Shift+Enter in the box."""
        self._on_submit.append(callback)

    def submit(self) -> None:
        """What Shift+Enter does (tests and code can call it)."""
        for callback in list(self._on_submit):
            callback(self)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            self.submit()
