"""The budget in a batch (``cometnb.batch`` and ``%%cometimg --batch``).

Before the first request, the items about to be sent (not those an earlier run finished) are
estimated together and refused with one :class:`~cometnb._core.errors.BudgetError` when the
session budget (``CometImg.budget``), or the cell's ``--budget``, cannot cover them. While the
batch runs, the guard the check returns admits each item when its turn comes; an item the budget
stops is not sent and stays pending, so running the batch again with more budget sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cometnb._client.spend_gate import open_gate
from cometnb._core.budget import SpendGuard
from cometnb._core.errors import BudgetError
from cometnb._core.prices import format_spend

__all__ = ["BudgetCheck", "session_check", "stopped_note"]

# Given the requests about to be sent: the run's guard (None: no cap), or a BudgetError raised.
BudgetCheck = Callable[[Sequence[Any]], SpendGuard | None]


# For a Python caller: no cell, so no --budget to raise (the magic's hint names it).
PYTHON_HINT = (
    "Raise it with %config CometImg.budget = USD, or run fewer items (a later call with the "
    "same name sends the rest)."
)


def session_check(requests: Sequence[Any]) -> SpendGuard | None:
    """What ``cometnb.batch`` checks: the session budget, as ``generate_many`` does
    (``CometImg.confirm_above`` is the magic's: a Python call is its own confirmation)."""
    try:
        return open_gate(requests)
    except BudgetError as refused:
        if refused.left_usd is not None:  # over what is left (not an unknown price)
            refused.hint = PYTHON_HINT
        raise


def stopped_note(guard: SpendGuard | None, total: int) -> str | None:
    """``Budget reached: 3 of 100 items were not sent…`` when the guard stopped some."""
    if guard is None or not guard.skipped:
        return None
    left = guard.left() or 0.0
    return (
        f"Budget reached: {guard.skipped} of {total} items were not sent "
        f"({format_spend(left, exact_below_cent=True)} left). {guard.raise_hint}, then run the "
        "batch again with the same name to send them."
    )
