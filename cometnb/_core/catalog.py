"""Read CometAPI's public model catalog (``GET {root}/api/models``) into a :class:`PriceTable`.

The catalog's exact shape is unverified (API_FACTS §8), so the reader is tolerant: it finds the
list of models wherever it is, takes only numbers that parse, and reports what it could not read
instead of failing. The catalog gives one input and one output rate (USD per 1M tokens) or one
price per request. Where the built-in table knows how a model's price varies (image input
dearer than text, per-image prices by size and quality), that shape is kept and scaled to the
catalog's figure; a model the built-in table does not know gets the catalog's figures as they are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from cometnb._core.prices import ModelPrice, PriceTable

__all__ = ["table_from_catalog"]

_LIST_KEYS = ("data", "models", "items", "result", "list")
_ID_KEYS = ("id", "model", "name", "model_name")


def table_from_catalog(data: Any, base: PriceTable, *, source: str) -> PriceTable:
    """The prices the catalog states, as a table to overlay on ``base`` (dated today).

    Example::

        >>> from cometnb._core.prices import builtin_table
        >>> cat = {"data": [{"id": "qwen-image", "pricing": {"per_request": 0.03}}]}
        >>> table_from_catalog(cat, builtin_table(), source="test").get("qwen-image").per_image
        {'*': {'*': 0.03}}
    """
    models: dict[str, ModelPrice] = {}
    problems: list[str] = []
    entries = _entries(data)
    if entries is None:
        problems.append("the catalog has no list of models (looked for 'data' or 'models')")
        entries = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = _name(entry)
        if name is None:
            problems.append(f"entry {index} names no model")
            continue
        if name in seen:
            problems.append(f"{name}: listed more than once; the first entry is used")
            continue
        seen.add(name)
        price, problem = _price(name, entry, base.models.get(base.aliases.get(name, name)))
        if problem:
            problems.append(f"{name}: {problem}")
        if price is not None:
            models[name] = price
    return PriceTable(
        models=models,
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        source=source,
        origin="catalog",
        problems=tuple(problems),
    )


def _entries(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if not isinstance(data, Mapping):
        return None
    for key in _LIST_KEYS:
        inner = data.get(key)
        if isinstance(inner, list):
            return inner
        if isinstance(inner, Mapping):
            found = _entries(inner)
            if found is not None:
                return found
            # {"data": {"gpt-image-2": {...}}}: a mapping by model id
            return [{"id": k, **v} for k, v in inner.items() if isinstance(v, Mapping)]
    return None


def _name(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return None
    for key in _ID_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _num(value: Any) -> float | None:
    """A positive finite number from a number or a numeric string; else ``None``.

    Zero is not read as a price: catalogs write 0 for "not priced this way" (output 0 beside
    a per_request price), and taking it would make the model's estimate $0.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _is_zero(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return False
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _price(
    name: str, entry: Mapping[str, Any], base: ModelPrice | None
) -> tuple[ModelPrice | None, str | None]:
    pricing = entry.get("pricing", entry)
    if not isinstance(pricing, Mapping):
        return None, "no pricing object"
    currency = str(pricing.get("currency") or "USD")
    if "USD" not in currency.upper():
        return None, f"prices in {currency!r}, not USD"
    scale = 1000.0 if "/ K" in currency.upper().replace("/K", "/ K") else 1.0
    raw_in, raw_out = pricing.get("input"), pricing.get("output")
    per_in, per_out = _num(raw_in), _num(raw_out)
    per_request = _num(pricing.get("per_request"))
    unread = [
        k
        for k in ("input", "output", "per_request")
        if pricing.get(k) is not None and _num(pricing.get(k)) is None
    ]
    zero = [k for k in unread if _is_zero(pricing.get(k))]
    others = [k for k in unread if k not in zero]
    notes = [f"could not read {', '.join(others)}"] if others else []
    if zero:
        notes.append(f"{', '.join(zero)} of 0 is not a price (left out)")
    note = "; ".join(notes) or None
    if per_out is not None:
        scaled_in = per_in * scale if per_in is not None else None
        return _tokens(name, scaled_in, per_out * scale, base), note
    if per_request is not None:
        return _flat(name, per_request, base), note
    return None, note or "no price it could read"


def _tokens(name: str, per_in: float | None, per_out: float, base: ModelPrice | None) -> ModelPrice:
    """Token rates; an input rate the catalog did not give stays the built-in one (or none)."""
    if base is None or base.image_out is None:
        return ModelPrice(name, text_in=per_in, image_in=per_in, image_out=per_out)
    ratio = per_out / base.image_out
    per_image = {
        q: {s: round(v * ratio, 6) for s, v in row.items()} for q, row in base.per_image.items()
    }
    return ModelPrice(
        name,
        text_in=per_in if per_in is not None else base.text_in,
        image_in=base.image_in * ratio if base.image_in is not None else per_in,
        image_out=per_out,
        text_out=base.text_out * ratio if base.text_out is not None else None,
        billing=base.billing,
        per_image=per_image,
        output_tokens=base.output_tokens,
        defaults=base.defaults,
    )


def _flat(name: str, usd: float, base: ModelPrice | None) -> ModelPrice:
    if base is None or not base.per_image:
        return ModelPrice(name, billing="per_image", per_image={"*": {"*": usd}})
    # Keep the built-in's shape (hd dearer than standard), scaled so its cheapest is the figure.
    cheapest = min(v for row in base.per_image.values() for v in row.values())
    ratio = usd / cheapest if cheapest else 1.0
    per_image = {
        q: {s: round(v * ratio, 6) for s, v in row.items()} for q, row in base.per_image.items()
    }
    return ModelPrice(name, billing="per_image", per_image=per_image, defaults=base.defaults)
