"""The budget in a batch (``cometnb.batch`` and ``%%cometimg --batch``).

Before the first request, the items about to be sent (not those an earlier run finished) are
estimated together and refused with one :class:`~cometnb._core.budget.BudgetError` when the
session budget (``CometImg.budget``), or the cell's ``--budget``, cannot cover them. While the
batch runs, the guard the check returns admits each item when its turn comes; an item the budget
stops is not sent and stays pending, so running the batch again with more budget sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cometnb._client.spend_gate import session_cap
from cometnb._core.budget import SpendGuard, guard_requests
from cometnb._core.cost import format_usd

__all__ = ["BudgetCheck", "session_check", "stopped_note"]

# Given the requests about to be sent: the run's guard (None: no cap), or a BudgetError raised.
BudgetCheck = Callable[[Sequence[Any]], SpendGuard | None]


def session_check(requests: Sequence[Any]) -> SpendGuard | None:
    """What ``cometnb.batch`` checks: the session budget, as ``generate_many`` does."""
    return guard_requests(
        requests, session_budget=session_cap(), cell_budget=None, confirm_above=None, yes=True
    )


def stopped_note(guard: SpendGuard | None, total: int) -> str | None:
    """``Budget reached: 3 of 100 items were not sent…`` when the guard stopped some."""
    if guard is None or not guard.skipped:
        return None
    left = guard.left() or 0.0
    return (
        f"Budget reached: {guard.skipped} of {total} items were not sent "
        f"({format_usd(left)} left) and are still pending. {guard.raise_hint}, then run the "
        "batch again with the same name to send them."
    )
