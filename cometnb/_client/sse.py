"""Server-sent events for ``stream: true`` (API_FACTS.md §3), without any I/O.

:class:`SSEDecoder` turns lines into events (``event:``/``data:`` fields, a blank line ends an
event, ``:`` starts a comment). :class:`StreamAssembler` dispatches on the JSON ``type`` of
each event: partial images are handed back for previews, ``image_generation.completed``
events become the result, an ``error`` object becomes an :class:`~._errors.APIError`, and
``data: [DONE]`` ends the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cometnb._client.response import (
    META_KEYS,
    ParsedResponse,
    ResultItem,
    api_error_from_body,
)
from cometnb._core.errors import ResponseError

__all__ = ["COMPLETED", "PARTIAL", "Partial", "SSEDecoder", "SSEEvent", "StreamAssembler"]

PARTIAL = "image_generation.partial_image"
COMPLETED = "image_generation.completed"
# Edits stream the same events under another name (API_FACTS §7).
PARTIALS = (PARTIAL, "image_edit.partial_image")
COMPLETEDS = (COMPLETED, "image_edit.completed")


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its ``event:`` name (if any) and the joined ``data:`` lines."""

    event: str | None
    data: str


class SSEDecoder:
    """Incremental SSE line decoder (the subset of the WHATWG rules this API needs).

    Example::

        >>> d = SSEDecoder()
        >>> [d.feed(x) for x in ("event: ping", "data: {}", "")][-1]
        SSEEvent(event='ping', data='{}')
    """

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        """Consume one line (without its newline); return an event when one is complete."""
        line = line.rstrip("\r\n")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # "id" and "retry" are irrelevant here

    def flush(self) -> SSEEvent | None:
        """End the current event (at a blank line or at the end of the stream)."""
        if not self._data:
            self._event = None
            return None
        event = SSEEvent(self._event, "\n".join(self._data))
        self._event, self._data = None, []
        return event


@dataclass(frozen=True)
class Partial:
    """A streamed preview: its 0-based index and its base64 payload."""

    index: int
    b64_json: str


class StreamAssembler:
    """Collects the events of one streamed generation into a :class:`ParsedResponse`.

    Example::

        >>> a = StreamAssembler()
        >>> a.handle(SSEEvent(None, '{"type": "image_generation.completed", "b64_json": "AA=="}'))
        >>> len(a.result().items)
        1
    """

    def __init__(self, host: str = "the server") -> None:
        self.host = host
        self.done = False
        self.partials = 0
        self._items: list[ResultItem] = []
        self._usage: dict[str, Any] | None = None
        self._created: int | None = None
        self._meta: dict[str, Any] = {}

    def handle(self, event: SSEEvent) -> Partial | None:
        """Process one event; return a :class:`Partial` for previews, raise on an error event."""
        if event.data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            payload = json.loads(event.data)
        except ValueError:
            raise ResponseError(
                f"{self.host} sent a malformed stream event (not JSON)",
                hint="The stream was corrupted; the generation may have been billed.",
            ) from None
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type") or event.event
        # Some proxies add "error": null to good events; only a real error object fails.
        if payload.get("error") or kind == "error":
            body = payload if payload.get("error") else {"error": payload}
            raise api_error_from_body(None, body, self.host)
        if kind in PARTIALS:
            return self._partial(payload)
        if kind in COMPLETEDS:
            self._completed(payload)
        return None  # unknown event types are ignored: the API may add new ones

    def _partial(self, payload: dict[str, Any]) -> Partial | None:
        b64 = payload.get("b64_json")
        if not isinstance(b64, str) or not b64:
            return None
        index = payload.get("partial_image_index")
        self.partials += 1
        return Partial(index if isinstance(index, int) else self.partials - 1, b64)

    def _completed(self, payload: dict[str, Any]) -> None:
        b64 = payload.get("b64_json")
        if not isinstance(b64, str) or not b64:
            raise ResponseError(f"{self.host} sent a completed event without an image")
        revised = payload.get("revised_prompt")
        self._items.append(ResultItem(b64, None, revised if isinstance(revised, str) else None))
        if isinstance(payload.get("usage"), dict):
            self._usage = payload["usage"]
        if isinstance(payload.get("created_at"), int):
            self._created = payload["created_at"]
        self._meta.update({k: payload[k] for k in META_KEYS if payload.get(k) is not None})

    def result(self) -> ParsedResponse:
        """The finished response; :class:`ResponseError` if no completed event arrived."""
        if not self._items:
            raise ResponseError(
                f"The stream from {self.host} ended before the final image "
                f"({self.partials} partial image(s) received).",
                hint="The generation may have been billed; it was not retried.",
            )
        return ParsedResponse(list(self._items), self._created, self._usage, dict(self._meta))
