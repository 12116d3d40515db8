"""What a request costs: :class:`Cost` (``usd`` ``None`` = unknown, never a silent 0) and how
amounts of USD are written in views and messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Cost", "format_usd"]


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


def format_usd(usd: float, *, rough: bool = False) -> str:
    """``$0.053`` (three decimals under $10); ``rough`` rounds to cents where cents say enough."""
    if rough:
        if usd >= 0.01 or usd == 0:
            return f"${usd:,.2f}"
        return f"${usd:.3f}" if usd >= 0.001 else f"${usd:.4f}"
    if usd >= 10:
        return f"${usd:,.2f}"
    return f"${usd:.3f}" if usd >= 0.001 or usd == 0 else f"${usd:.5f}"
