"""The session budget (``CometImg.budget``) in the clients: ``Client.generate``,
``AsyncClient``, ``generate_many`` and ``History.rerun`` refuse, before sending, what the
budget cannot cover — the same check and message as the magic and the panel.

:func:`open_gate` checks a whole batch before its first request (raising
:class:`~cometnb._core.errors.BudgetError`) and returns the run's
:class:`~cometnb._core.budget.SpendGuard`; each request is then admitted when its turn comes
(:func:`refused`) and settled when it ends, so requests not yet sent stop once what is left
cannot cover them. Nothing in flight is abandoned, so spend can pass the budget by what the
requests in flight cost beyond their estimates. A request the grid runner's guard already
admitted (:func:`cometnb._core.budget.admitted`) is not checked twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cometnb._core.budget import SpendGuard, guard_requests, pre_admitted, session_budget
from cometnb._core.errors import BudgetError
from cometnb._core.generations import Generation

__all__ = ["not_sent", "open_gate"]


def open_gate(bodies: Sequence[Any]) -> SpendGuard | None:
    """Check every body's (or ImageRequest's) estimate against the session budget first.

    Returns the guard that admits each request in turn, or ``None`` when no budget is set
    (or a caller's guard already admitted these requests). Raises :class:`BudgetError`.
    """
    cap = session_budget()
    if cap is None or pre_admitted():
        return None
    return guard_requests(
        bodies, session_budget=cap, cell_budget=None, confirm_above=None, yes=True
    )


def not_sent(body: dict[str, Any], error: BudgetError) -> Generation:
    """The result of a request the budget stopped: nothing sent, nothing recorded, $0."""
    return Generation(request=body, error=error, status="cancelled")
