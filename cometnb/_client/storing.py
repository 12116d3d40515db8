"""Storing an outcome: a result or a failure becomes a :class:`Generation`, recorded in the history.

:class:`_Storing` is the part of :class:`~cometnb._client.client._BaseClient` that turns what the
exchange ended with into the caller's :class:`Generation`: it records successes and failures in
the history (or keeps the images in memory when there is none) and adds each one's cost to the
kernel's spend (:func:`cometnb._core.budget.ledger`). It is blocking; the async client runs it in
a worker thread."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from cometnb._client.batch import ORIGIN
from cometnb._core import budget
from cometnb._core.errors import CometError
from cometnb._core.generations import ApiResult, ClientEvent, GeneratedImage, Generation
from cometnb._core.prices import Cost
from cometnb._core.protocols import HistorySink, OnEvent
from cometnb._storage.batches import REQUESTS, BatchStore
from cometnb._storage.records import scrub_request

__all__ = ["InFlight", "_Storing", "describe"]

log = logging.getLogger("cometnb")


class _Storing:
    """Results and failures stored in the history, and their cost counted (no I/O of its own)."""

    def _store(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        result: ApiResult,
        elapsed_s: float,
        tags: tuple[str, ...],
        origin: str | None,
    ) -> Generation:
        images: list[GeneratedImage]
        record_id = None
        cost = None
        if history is None:
            source = {
                "prompt": body.get("prompt", ""),
                "model": body.get("model", ""),
                "params": {k: v for k, v in body.items() if k not in ("prompt", "model")},
            }
            images = [
                GeneratedImage(
                    None, i.format, i.width, i.height, i.revised_prompt, data=i.data, source=source
                )
                for i in result.images
            ]
        else:
            record = history.record_success(
                body, result, elapsed_s=elapsed_s, tags=tags, origin=origin
            )
            images, record_id = list(record.images), record.id
            cost = _stored_cost(record)
        gen = Generation(
            request=body,
            images=images,
            usage=result.usage,
            created=result.created,
            elapsed_s=elapsed_s,
            record_id=record_id,
            meta=dict(result.meta),
            synthetic=result.synthetic,
            _cost=cost,
        )
        budget.ledger().add(gen.cost)  # the kernel's spend, for CometImg.budget
        return gen

    def _record_failure(
        self,
        history: HistorySink | None,
        body: dict[str, Any],
        error: CometError,
        elapsed_s: float,
        tags: tuple[str, ...],
        origin: str | None,
        status: Literal["error", "cancelled"] = "error",
    ) -> Generation:
        record_id = None
        cost = None
        if history is not None:
            try:
                record = history.record_failure(
                    body, error, elapsed_s=elapsed_s, tags=tags, origin=origin, status=status
                )
                record_id = error.record_id = record.id
                cost = _stored_cost(record)
            except Exception as exc:  # the original error matters more than its record
                log.warning("cometnb: could not record a failed request in the history (%s)", exc)
        gen = Generation(
            request=body,
            elapsed_s=elapsed_s,
            record_id=record_id,
            error=error,
            status=status,
            _cost=cost,
        )
        budget.ledger().add(gen.cost)  # $0 when refused; its estimate when it may be billed
        return gen


def _stored_cost(record: object) -> Cost | None:
    """The cost the history stored on the record (a stand-in history may not price)."""
    cost = getattr(record, "cost", None)
    return cost if isinstance(cost, Cost) else None


# --- Single requests on the wire, marked the way batch items are, so a kill leaves a trace.
#
# ``generate``, ``generate_many`` and ``edit`` mark each request ``sending`` in the history's
# batch table (:data:`~cometnb._storage.batches.REQUESTS`, one row per request) on the client's
# ``"sending"`` event, right before the POST: the commit a batch makes for its items. The row is
# dropped once the answer is in and storing starts (from then on, what a kill leaves is the
# writer's: images ``repair()`` adopts, documents it restores) or the request ends otherwise.
# A process killed while the request is on the wire (``kill -9``, a kernel restart) leaves the
# row behind, naming its process and the request; ``History.repair()`` turns a row whose process
# is gone into an error record that may have been billed (charged its estimate), found like any
# other failure. Batch items are marked by the batch itself. The mark is a safety net: when it
# cannot be written, the request is sent anyway (and a warning logged).

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
    """One request on the wire: :meth:`follow` wraps the request's ``on_event`` and notes when
    its POST leaves (:attr:`sent`: a cancel before that is not billed) and, with a history
    folder, marks its row; :meth:`close` drops the row once the request is recorded."""

    def __init__(
        self, stores: dict[Path, BatchStore], history: HistorySink | None, origin: str | None
    ) -> None:
        root = getattr(history, "path", None)
        self._store = None
        if isinstance(root, Path) and not (origin or "").startswith(_BATCH):
            self._store = stores.get(root) or stores.setdefault(root, BatchStore(root))
        self._key = uuid.uuid4().hex
        self._marked = False
        self.sent = False  # the "sending" event came: the POST is about to leave

    def follow(self, body: Mapping[str, Any], on_event: OnEvent | None) -> OnEvent:
        store = self._store

        def handler(event: ClientEvent) -> None:
            if event.kind == "sending":
                self.sent = True
                if store is not None and not self._marked:
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
