"""The outcome of a resumable batch: :class:`Batch` (what is done, failed, uncertain, pending).

A :class:`Batch` reads its items' states from the history folder's batch table and their
records from the history, so it describes the batch as it stands — including what earlier
runs did — not only what the last call sent. ``cometnb.batch(...)`` (``_client/batch_run.py``)
returns one. ``uncertain`` items may have been billed without an image coming back — a read
timeout or a 5xx after sending, or a request in flight when a run was killed, restarted or
interrupted — and are sent again only with ``retry_billed=True``; the repr says how many.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cometnb._client.batch_items import BatchItem
from cometnb._core.cost import Cost
from cometnb._storage.batches import BatchStore, ItemState
from cometnb._storage.folder import History
from cometnb._storage.records import Record

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Batch", "billed_note"]


class Batch:
    """A named batch: its items in input order and where each one stands.

    ``done`` / ``failed`` are history :class:`Record` s (input order); ``uncertain`` are items
    whose request may have been billed without an image coming back (sent again only with
    ``retry_billed=True``); ``pending`` are items not sent yet (or sent and certainly not
    billed). ``results`` has one entry per item: its record, or ``None`` while pending.

    Example::

        >>> b = cometnb.batch(["a red fox", "an owl"], name="animals")  # doctest: +SKIP
        >>> b
        <Batch 'animals': 2 done, 0 failed, 0 uncertain, 0 pending of 2>
        >>> b.export("animals.html")  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        items: Sequence[BatchItem],
        history: History,
        store: BatchStore,
        *,
        resent: Sequence[str] = (),
        notes: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.items = list(items)
        self.history = history
        self._store = store
        # Keys in flight when a run stopped (killed, restarted, interrupted), so uncertain,
        # and sent again by this call because retry_billed=True.
        self.resent_after_interrupt = list(resent)
        self.notes = list(notes)  # what the last run has to tell (e.g. the budget stopped it)
        self._states: dict[str, ItemState] = {}
        self.refresh()

    def refresh(self) -> Batch:
        """Read the items' states again (another process may be running the batch)."""
        self._states = self._store.states(self.name)
        return self

    def state(self, item: BatchItem | str) -> str:
        """``"pending"``, ``"sending"``, ``"done"``, ``"failed"`` or ``"uncertain"``."""
        key = item if isinstance(item, str) else item.key
        found = self._states.get(key)
        return found.state if found else "pending"

    def _record(self, item: BatchItem) -> Record | None:
        found = self._states.get(item.key)
        if found is None or found.record_id is None:
            return None
        return self.history.get(found.record_id)

    def _with(self, *states: str) -> list[BatchItem]:
        return [item for item in self.items if self.state(item) in states]

    # --- the public view ---------------------------------------------------------------------

    @property
    def done(self) -> list[Record]:
        """Records of the items that produced images, in input order."""
        return [r for r in map(self._record, self._with("done")) if r is not None]

    @property
    def failed(self) -> list[Record]:
        """Records of the items that failed (uncertain ones included), in input order."""
        found = map(self._record, self._with("failed", "uncertain"))
        return [r for r in found if r is not None]

    @property
    def uncertain(self) -> list[BatchItem]:
        """Items that may have been billed without an image (read timeout, 5xx after sending,
        or in flight when a run stopped); sent again only with ``retry_billed=True``."""
        return self._with("uncertain")

    @property
    def pending(self) -> list[BatchItem]:
        """Items not sent yet (waiting for their turn included), or to send again (failures
        that were certainly not billed); ``sending`` ones are on the wire in a running call."""
        return self._with("pending", "sending")

    @property
    def results(self) -> list[Record | None]:
        """One entry per item in input order: its record, or ``None`` while pending."""
        return [self._record(item) for item in self.items]

    @property
    def cost(self) -> Cost:
        """What the done items cost, like ``Generation.cost``: ``.usd`` is their records' sum,
        ``None`` when one of them has no price; ``.estimated`` when one is an estimate."""
        total = Cost(0.0, False, "nothing done yet")
        for record in self.done:
            total = total + record.cost
        return total

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the done items like ``History.export`` (``.html``, ``.zip`` or ``.jsonl``)."""
        return self.history.export(path, records=self.done)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per item: position, key, state, prompt, model, record id, error, image path,
        tags (needs pandas: ``pip install cometnb[pandas]``)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is in the dev extra
            from cometnb._core.errors import CometError

            raise CometError(
                "Batch.to_dataframe() needs pandas", hint="pip install 'cometnb[pandas]'"
            ) from None
        frame: pd.DataFrame = pd.DataFrame([self._row(item) for item in self.items])
        return frame

    def _row(self, item: BatchItem) -> dict[str, Any]:
        record = self._record(item)
        found = self._states.get(item.key)
        image = record.images[0].path if record is not None and record.images else None
        return {
            "position": item.position,
            "key": item.key,
            "state": self.state(item),
            "prompt": item.request.prompt,
            "model": item.request.model,
            "record_id": found.record_id if found else None,
            "error": found.error if found else None,
            "image_path": str(image) if image is not None else None,
            "tags": list(item.tags),
        }

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        counts = dict.fromkeys(("done", "failed", "uncertain", "pending"), 0)
        for item in self.items:
            state = self.state(item)
            counts["pending" if state == "sending" else state] += 1
        return counts

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        c = self.counts()
        note = f"; {billed_note(c['uncertain'])}" if c["uncertain"] else ""
        return (
            f"<Batch {self.name!r}: {c['done']} done, {c['failed']} failed, "
            f"{c['uncertain']} uncertain, {c['pending']} pending of {len(self.items)}{note}>"
        )


def billed_note(uncertain: int) -> str:
    """The short note on items that may have been billed (the repr and the progress bar's)."""
    items, them = ("1 item", "it") if uncertain == 1 else (f"{uncertain} items", "them")
    return f"{items} may have been billed without an image; retry_billed=True sends {them} again"
