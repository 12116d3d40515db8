"""The ``%%cometimg`` side of spend: check a cell's estimate before it sends anything, guard the
run, and say afterwards what the budget stopped; ``--dry-run``'s estimate lines.

Settings: ``CometImg.budget`` (USD this session), ``CometImg.confirm_above`` (USD per cell);
cell options: ``--budget USD`` and ``--yes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cometnb._core.budget import SpendGuard, confirm_above, guard_requests, session_budget
from cometnb._core.generations import Generation, Grid
from cometnb._core.prices import Cost, active_table, estimate_all, format_spend

__all__ = ["check_cell", "check_requests", "dry_run_costs", "skipped_note"]


def check_cell(grid: Grid, *, budget: float | None, yes: bool) -> SpendGuard | None:
    """Check the whole cell before the first request; returns the run's guard (``None`` when
    no budget is set). Raises :class:`~cometnb._core.errors.BudgetError` to refuse it."""
    return check_requests([c.request for c in grid.cells], budget=budget, yes=yes)


def check_requests(
    requests: Sequence[Any], *, budget: float | None, yes: bool
) -> SpendGuard | None:
    """:func:`check_cell` for a list of requests (a ``--batch`` cell checks what it will send:
    the items an earlier run did not finish)."""
    return guard_requests(
        requests,
        session_budget=session_budget(),
        cell_budget=budget,
        confirm_above=confirm_above(),
        yes=yes,
    )


def skipped_note(grid: Grid, guard: SpendGuard | None) -> str | None:
    """``Budget reached: 3 of 9 requests were not sent…`` when the guard stopped some."""
    if guard is None or not guard.skipped:
        return None
    total = len(grid.cells)
    made = sum(len(g.images) for g in grid.generations if g.ok)
    kept = f"the {made} image{'s' if made != 1 else ''} already made are kept"
    left = guard.left() or 0.0
    return (
        f"Budget reached: {guard.skipped} of {total} requests were not sent ({kept}; "
        f"{format_spend(left, exact_below_cent=True)} left). {guard.raise_hint} to send the rest."
    )


def dry_run_costs(requests: Sequence[Any]) -> str:
    """One line per request with its estimate, then the total, for ``--dry-run``."""
    table = active_table()
    estimates = estimate_all(requests, table)
    width = len(str(len(estimates)))
    lines = [
        f"  [{i:>{width}}] {cost.label:<14} {cost.basis}" for i, cost in enumerate(estimates, 1)
    ]
    total = Cost.total(estimates)
    unknown = sum(1 for c in estimates if c.usd is None)
    known = Cost.total(c for c in estimates if c.usd is not None)
    summary = total.label if not unknown else f"{known.label} + {unknown} of unknown cost"
    head = f"Estimated cost ({table.label} prices):"
    return "\n".join([head, *lines, f"  total: {summary} for {len(estimates)} request(s)"])


def generation_cost(gen: Generation) -> Cost | None:
    """A finished generation's cost for the guard (``None`` when it has none to say)."""
    cost = getattr(gen, "cost", None)
    return cost if isinstance(cost, Cost) else None
