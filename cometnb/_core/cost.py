"""What a request costs: :class:`Cost` (``usd`` ``None`` = unknown, never a silent 0) and how
amounts of USD are written in views and messages."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NANOS_PER_USD", "Cost", "format_spend", "format_usd", "from_nanos", "to_nanos"]

# Sums of money are kept in whole nano-dollars (10⁻⁹ USD): integers add exactly, so a total is
# the same whatever the order (SQL's or Python's) and prints as 0.51842, not
# 0.5184200000000001. Each cost is counted to the nearest nano-dollar (a millionth of a cent:
# far below what any price table or bill shows); the total is exact to that.
NANOS_PER_USD = 1_000_000_000
_INT64_MAX = 2**63 - 1  # what SQLite's CAST AS INTEGER gives for a larger value


def to_nanos(usd: float) -> int:
    """``usd`` in whole nano-dollars, rounded half up, as the spend query's SQL rounds it
    (``CAST(u * 1e9 + 0.5 AS INTEGER)``: the same float operations, so the same integer)."""
    scaled = usd * float(NANOS_PER_USD) + 0.5
    if not math.isfinite(scaled) or abs(scaled) > _INT64_MAX:
        return _INT64_MAX if scaled > 0 else -_INT64_MAX
    return int(scaled)


def from_nanos(nanos: int | float) -> float:
    """Whole nano-dollars back to USD: the float nearest the exact decimal (so ``0.51842``)."""
    return int(nanos) / NANOS_PER_USD


@dataclass(frozen=True)
class Cost:
    """What a request cost, or will cost.

    ``usd`` is ``None`` when unknown (a model without a price): never a silent 0.
    ``estimated`` is True for a figure made before sending (or without ``usage``);
    ``basis`` says how it was reached, ``prices`` which table (``"built-in 2026-12-01"``).

    Example::

        >>> Cost(0.05268, False, "1756 image tokens").label
        '$0.053'
        >>> Cost(0.05268, True, "estimate").label, Cost(None, False, "no price").label
        ('≈ $0.05', 'cost unknown')
    """

    usd: float | None
    estimated: bool
    basis: str
    prices: str | None = None

    @property
    def known(self) -> bool:
        return self.usd is not None

    @property
    def label(self) -> str:
        """``$0.053``, ``≈ $0.05`` when estimated, or ``cost unknown``."""
        if self.usd is None:
            return "cost unknown"
        return f"≈ {format_usd(self.usd, rough=True)}" if self.estimated else format_usd(self.usd)

    def __str__(self) -> str:
        return self.label

    def __add__(self, other: Cost) -> Cost:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        return Cost(usd, self.estimated or other.estimated, "sum", self.prices or other.prices)

    def to_dict(self) -> dict[str, Any]:
        """What a history record stores (so a later price change does not rewrite history)."""
        return {
            "usd": self.usd,
            "estimated": self.estimated,
            "basis": self.basis,
            "prices": self.prices,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        usd = data.get("usd")
        return cls(
            float(usd) if isinstance(usd, (int, float)) and not isinstance(usd, bool) else None,
            bool(data.get("estimated")),
            str(data.get("basis") or ""),
            str(data["prices"]) if data.get("prices") else None,
        )

    @staticmethod
    def total(costs: Iterable[Cost]) -> Cost:
        """The sum; unknown when any part is unknown."""
        out = Cost(0.0, False, "sum")
        for cost in costs:
            out = out + cost
        return out


def format_spend(usd: float, *, exact_below_cent: bool = False) -> str:
    """Money spent or left, to the cent: ``$0.52``, ``$1,204.10``; under a cent but not
    nothing, ``<$0.01`` (``exact_below_cent``: ``$0.003``, for a budget's remainder set
    against a sub-cent estimate). One request's cost keeps three decimals: :func:`format_usd`.

    Example::

        >>> format_spend(0.51842), format_spend(0.004), format_spend(0.0)
        ('$0.52', '<$0.01', '$0.00')
    """
    if 0 < usd < 0.01:  # "$0.01" would overstate it, "$0.00" say it was free
        return format_usd(usd) if exact_below_cent else "<$0.01"
    return f"${usd:,.2f}"


def format_usd(usd: float, *, rough: bool = False) -> str:
    """``$0.053`` (three decimals under $10); ``rough`` rounds to cents where cents say enough."""
    if rough:
        if usd >= 0.01 or usd == 0:
            return f"${usd:,.2f}"
        return f"${usd:.3f}" if usd >= 0.001 else f"${usd:.4f}"
    if usd >= 10:
        return f"${usd:,.2f}"
    return f"${usd:.3f}" if usd >= 0.001 or usd == 0 else f"${usd:.5f}"
