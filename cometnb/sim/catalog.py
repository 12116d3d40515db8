"""The simulator's public model catalog, ``GET /api/models``, in the shape CometAPI documents.

``{"success": true, "data": [{"id", "pricing": {"currency", "input", "output", "per_request",
"per_second"}}]}`` (the shared fixture ``api-models.json``). Figures follow CometAPI's example:
token models at 0.8× the built-in (OpenAI) rates in "USD / M Tokens"; per-image models one
price per request, the cheapest list price; models without a built-in price (qwen-image and
the like) the fixture's $0.03 per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cometnb._core.prices import builtin_table

__all__ = ["LATER_MODELS", "catalog_body"]

# Ids cometnb has no row for that the simulator serves and lists (``/v1/models`` and the
# catalog), as CometAPI would list a model released after this cometnb: a test sees
# ``refresh_prices()`` learn it as ``assumed`` with its family's rules.
LATER_MODELS = ("gpt-image-2.7-flare",)

DISCOUNT = 0.8  # CometAPI's example: gpt-image-2 input 4, output 24 against OpenAI's 5 / 30
UNPRICED_PER_REQUEST = 0.03


def _entry(name: str) -> dict[str, Any]:
    price = builtin_table().get(name)
    pricing: dict[str, Any] = {"input": None, "output": None, "per_request": None}
    if price is not None and price.image_out is not None:
        pricing["currency"] = "USD / M Tokens"
        pricing["input"] = round((price.text_in or 0.0) * DISCOUNT, 6)
        pricing["output"] = round(price.image_out * DISCOUNT, 6)
    else:
        pricing["currency"] = "USD"
        cheapest = [v for row in price.per_image.values() for v in row.values()] if price else []
        pricing["per_request"] = min(cheapest) if cheapest else UNPRICED_PER_REQUEST
    pricing["per_second"] = None
    return {"id": name, "pricing": pricing}


def catalog_body(models: Iterable[str]) -> dict[str, Any]:
    """The catalog listing ``models`` (sorted), as the simulator serves it."""
    return {"success": True, "data": [_entry(m) for m in sorted(models)]}
