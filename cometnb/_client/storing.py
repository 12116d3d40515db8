"""Storing an outcome: a result or a failure becomes a :class:`Generation`, recorded in the history.

:class:`_Storing` is the part of :class:`~cometnb._client.client._BaseClient` that turns what the
exchange ended with into the caller's :class:`Generation`: it records successes and failures in
the history (or keeps the images in memory when there is none) and adds each one's cost to the
kernel's spend (:func:`cometnb._core.budget.ledger`). It is blocking; the async client runs it in
a worker thread.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from cometnb._core import budget
from cometnb._core.errors import CometError
from cometnb._core.generations import ApiResult, GeneratedImage, Generation
from cometnb._core.prices import Cost
from cometnb._core.protocols import HistorySink

__all__ = ["_Storing"]

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
