"""Single requests on the wire, marked the way batch items are, so a kill leaves a trace.

``generate``, ``generate_many`` and ``edit`` mark each request ``sending`` in the history's
batch table (:data:`~cometnb._storage.batches.REQUESTS`, one row per request) on the client's
``"sending"`` event, right before the POST: the commit a batch makes for its items. The row is
dropped once the answer is in and storing starts (from then on, what a kill leaves is the
writer's: images ``repair()`` adopts, documents it restores) or the request ends otherwise.
A process killed while the request is on the wire (``kill -9``, a kernel restart) leaves the
row behind, naming its process and the request; ``History.repair()`` turns a row whose process
is gone into an error record that may have been billed (charged its estimate), found like any
other failure. Batch items are marked by the batch itself. The mark is a safety net: when it
cannot be written, the request is sent anyway (and a warning logged).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cometnb._client.batch import ORIGIN
from cometnb._core.generations import ClientEvent
from cometnb._core.protocols import HistorySink, OnEvent
from cometnb._storage.batches import REQUESTS, BatchStore
from cometnb._storage.records import scrub_request

__all__ = ["InFlight", "describe"]

log = logging.getLogger("cometnb")

_BATCH = ORIGIN.split("{", 1)[0]  # "batch:": a batch marks its own items


def describe(body: Mapping[str, Any]) -> str:
    """The row's note: this process, and the request as its record will name it."""
    request = {k: v for k, v in body.items() if isinstance(v, str | int | float | bool)}
    inputs = getattr(body, "images", None)
    if inputs:
        request["input_images"] = len(inputs)
    note = {"pid": os.getpid(), "host": socket.gethostname(), "request": scrub_request(request)}
    return json.dumps(note, ensure_ascii=False, default=str)


class InFlight:
    """One request's row: :meth:`follow` wraps the request's ``on_event``, :meth:`close`
    drops the row once the request is recorded. Does nothing without a history folder."""

    def __init__(
        self, stores: dict[Path, BatchStore], history: HistorySink | None, origin: str | None
    ) -> None:
        root = getattr(history, "path", None)
        self._store = None
        if isinstance(root, Path) and not (origin or "").startswith(_BATCH):
            self._store = stores.get(root) or stores.setdefault(root, BatchStore(root))
        self._key = uuid.uuid4().hex
        self._marked = False

    def follow(self, body: Mapping[str, Any], on_event: OnEvent | None) -> OnEvent | None:
        store = self._store
        if store is None:
            return on_event

        def handler(event: ClientEvent) -> None:
            if event.kind == "sending" and not self._marked:
                try:
                    store.start(REQUESTS, self._key, describe(body))
                    self._marked = True
                except Exception as exc:  # a safety net, not a precondition: send anyway
                    log.warning("cometnb: could not note a request as in flight (%s)", exc)
            elif event.kind == "storing":
                self.close()  # answered: from here the writer's files are what repair finds
            if on_event is not None:
                on_event(event)

        return handler

    def close(self) -> None:
        if self._marked and self._store is not None:
            try:
                self._store.forget(REQUESTS, [self._key])
            except Exception:  # the record is written: a stale row only costs a repair note
                return
            self._marked = False
