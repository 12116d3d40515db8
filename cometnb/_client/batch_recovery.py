"""Where a batch's items stand after a run stopped, and which failures may have been billed.

A run can stop with requests in flight: killed (``kill -9``, a kernel restart) or interrupted.
Those items are settled here on the next run from what the history holds: the record the item's
request left (its ``origin`` names the item) decides it; with no record, the POST had left and
may have been generated and billed, so the item is ``uncertain`` and is sent again only with
``retry_billed=True``. :func:`may_be_billed` reads a failure's :class:`BillingRisk` (decided
where it failed, stored in the record and the batch row); :func:`legacy_may_be_billed` is the
guess for what was stored before the risk was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cometnb._client.response import QUOTA_HINT
from cometnb._core.billing import BillingRisk, status_may_be_billed
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CometError,
    RateLimitError,
    ResponseError,
)
from cometnb._storage.batches import BatchStore, ItemState, State
from cometnb._storage.folder import History

__all__ = [
    "CANCELLED_IN_FLIGHT",
    "IN_FLIGHT",
    "KILLED_IN_FLIGHT",
    "ORIGIN",
    "cancelled_in_flight",
    "halts_the_batch",
    "in_flight_before",
    "legacy_may_be_billed",
    "may_be_billed",
    "settle_in_flight",
]

ORIGIN = "batch:{name}/{key}"
# The errors of items whose request was in flight when a run stopped: no answer is known.
KILLED_IN_FLIGHT = (
    "in flight when an earlier run stopped (kill or restart): it may have been billed"
)
CANCELLED_IN_FLIGHT = "in flight when the run was interrupted: it may have been billed"
IN_FLIGHT = (KILLED_IN_FLIGHT, CANCELLED_IN_FLIGHT)
_IN_FLIGHT = BillingRisk.SENT_NO_ANSWER


def may_be_billed(error: CometError) -> bool:
    """True when the failed request may still have been billed (read timeout, a 5xx after
    sending, an unusable answer): such an item is not sent again without ``retry_billed``."""
    if error.billing is not None:
        return error.billing.may_be_billed
    return legacy_may_be_billed(error)


def legacy_may_be_billed(error: CometError | None, cost_usd: float | None = None) -> bool:
    """The guess for a failure stored without its :class:`BillingRisk` (a record or batch row
    written before issue 22): from the error's class, status and wording, or a cost the ledger
    kept above $0 (what it charged because the failure may have been billed)."""
    if (cost_usd or 0) > 0 or isinstance(error, ResponseError):
        return True
    if isinstance(error, APIError):
        if error.status is not None:
            return status_may_be_billed(error.status)
        return "read timeout" in error.message or "dropped after the request" in error.message
    return False


def halts_the_batch(error: CometError) -> bool:
    """A failure the next items would meet too: the account's quota or balance is spent
    (a 429 that waiting will not cure), or the key is missing, unusable or refused."""
    if isinstance(error, AuthenticationError):
        return True  # no key, an unusable one, or the server refused it (401 / 403)
    return isinstance(error, RateLimitError) and error.hint == QUOTA_HINT


def in_flight_before(state: ItemState | None) -> bool:
    return state is not None and state.state == "uncertain" and state.error in IN_FLIGHT


def cancelled_in_flight(states: dict[str, ItemState]) -> list[ItemState]:
    """Items an interrupt left ``uncertain`` in flight: their record may have landed since
    (a cancel while storing lets the store finish)."""
    return [s for s in states.values() if s.state == "uncertain" and s.error == CANCELLED_IN_FLIGHT]


def settle_in_flight(
    name: str, in_flight: Sequence[ItemState], history: History, store: BatchStore
) -> None:
    """Items whose request was in flight when a run stopped: done, failed or uncertain as their
    record in the history says; with no record, ``uncertain`` (the POST had left, so it may
    have been generated and billed)."""
    if not in_flight:
        return
    origins = {ORIGIN.format(name=name, key=s.key): s.key for s in in_flight}
    # The batch's records by tag (SQL over the tags column, not a load of every record),
    # oldest first, so the newest record of each item wins. A "cancelled" record says only
    # that the answer never came; a record the state already names is an earlier run's.
    found = {
        origins[r.origin]: r
        for r in history.find(tag=f"batch:{name}")
        if r.origin in origins and r.status != "cancelled"
    }
    for state in in_flight:
        record = found.get(state.key)
        if record is None or record.id == state.record_id:
            if state.state == "sending":
                store.mark(name, state.key, "uncertain", error=KILLED_IN_FLIGHT, billing=_IN_FLIGHT)
        elif record.status == "ok":
            store.mark(name, state.key, "done", record_id=record.id)
        else:
            error = record.to_generation().error
            risk = None if error is None else error.billing
            billed = legacy_may_be_billed(error, record.cost.usd) if risk is None else None
            if risk is not None:
                billed = risk.may_be_billed
            new: State = "uncertain" if billed else "failed"
            store.mark(
                name, state.key, new, record_id=record.id, error=_error_text(record), billing=risk
            )


def _error_text(record: Any) -> str:
    info = record.error_info or {}
    return str(info.get("message") or record.status)
