"""What a running request reports, as text people read: one describer for every front end.

The client reports :class:`~cometnb._core.generations.ClientEvent` s; :func:`describe_event` turns
one into the short status text the cell views and the panel both show. :class:`CellProgress`
is the live state of one request of a grid, which the grid runner writes and the cell views
read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cometnb._core.generations import ClientEvent

__all__ = ["RATE_LIMIT_REASON", "CellProgress", "CellState", "describe_event"]

CellState = Literal["queued", "running", "done", "failed", "cancelled", "not sent (budget)"]


# The ClientEvent reason while a request waits for its turn under the server's rate limit
# (the client's pacer spaces sends; see cometnb._client.runner).
RATE_LIMIT_REASON = "the rate limit"


def describe_event(event: ClientEvent) -> str:
    """A status-line text for a client event, e.g. ``"waiting 2 s after HTTP 429"``.

    Example::

        >>> from cometnb._core.generations import ClientEvent
        >>> describe_event(ClientEvent("sending", attempt=2))
        'retrying (attempt 2)'
    """
    if event.kind == "waiting":
        wait = _seconds(event.wait_s)
        if event.reason == RATE_LIMIT_REASON:
            return f"waiting on the rate limit ({wait} s)"
        return f"waiting {wait} s after {event.reason}" if event.reason else f"waiting {wait} s"
    if event.kind == "sending":
        return "sending" if event.attempt <= 1 else f"retrying (attempt {event.attempt})"
    if event.kind == "partial":
        index = 0 if event.partial_index is None else event.partial_index
        return f"partial image {index + 1} received"
    if event.kind == "received":
        return "decoding the image"
    if event.kind == "downloading":
        return "downloading the image"
    return "saving to history"


def _seconds(value: float | None) -> str:
    if value is None:
        return "a few"
    return str(round(value)) if value >= 1 or value == 0 else f"{value:.1f}"


@dataclass
class CellProgress:
    """Live state of one cell, written on the loop thread and read on the caller's.

    Example::

        >>> p = CellProgress()
        >>> p.text(now=0.0)
        'queued'
    """

    state: CellState = "queued"
    started: float | None = None  # time.monotonic() when the request started
    note: str | None = None  # the latest client event, e.g. "waiting 2 s after HTTP 429"
    partial: bytes | None = None  # the latest streamed preview (raw image bytes)
    partial_index: int | None = None
    sent: bool = False  # the request went out (so a cancel may still be billed)

    def text(self, now: float | None = None) -> str:
        """One short line: state, elapsed seconds and the latest event."""
        if self.state != "running" or self.started is None:
            return self.state
        elapsed = int((time.monotonic() if now is None else now) - self.started)
        return f"{elapsed} s · {self.note}" if self.note else f"{elapsed} s"

    @property
    def finished(self) -> bool:
        """True once the cell is done, failed or cancelled."""
        return self.state in ("done", "failed", "cancelled", "not sent (budget)")
