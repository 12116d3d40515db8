"""The panel's balance line: what is left on the CometAPI account, beside the session's spend.

It is read when the panel opens and again after each run (never per keystroke), on a worker
thread so the kernel's loop never waits for the quota endpoint; it is shown only where
``_core/balance.reads_itself`` says the endpoint is the account's. An endpoint that fails
shows "balance unavailable" (the reason in the tooltip; stderr says it once a session).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from concurrent.futures import Future
from typing import Any

import ipywidgets as W

from cometnb._client.balance import read_quietly
from cometnb._core.balance import Balance, account, reads_itself
from cometnb._core.budget import ledger
from cometnb._core.prices import format_spend

__all__ = ["BalanceLine"]


class BalanceLine:
    """``balance $41.27`` beside the spend line (``widget``); :meth:`refresh` reads it again.

    Example::

        >>> line = BalanceLine()  # doctest: +SKIP
        >>> line.widget.value  # doctest: +SKIP
        '<span title="…">· balance $41.27</span>'
    """

    def __init__(self) -> None:
        self.widget = W.HTML("")
        self.widget.add_class("cometnb-balance")
        self.reading: asyncio.Future[Balance | None] | Future[Balance | None] | None = None

    def refresh(self) -> None:
        """Read the balance again: on a worker thread inside a running loop (a kernel), at once
        otherwise (a script, a test)."""
        if not reads_itself():
            self.widget.value = ""
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.show(read_quietly())
            return
        self.reading = loop.run_in_executor(None, read_quietly)
        self.reading.add_done_callback(self._done)

    def _done(self, reading: Any) -> None:
        # On the kernel's loop, maybe after the panel closed: a line that cannot be drawn any
        # more is no error worth a traceback in the log.
        with contextlib.suppress(Exception):
            failed = reading.cancelled() or reading.exception() is not None
            self.show(None if failed else reading.result())

    def show(self, found: Balance | None) -> None:
        """Draw ``found`` (``None``: the read failed, the reason in the tooltip)."""
        if found is None:
            why = account().problem or "not read"
            self.widget.value = (
                f'<span style="opacity:.7" title="{html.escape(why, quote=True)}">'
                "· balance unavailable</span>"
            )
            return
        left = account().left_usd(ledger().usd)
        shown = format_spend(left if left is not None else found.available_usd)
        tip = html.escape(f"{found}. Cells and batches above it are refused.", quote=True)
        self.widget.value = f'<span style="opacity:.8" title="{tip}">· balance {shown}</span>'
