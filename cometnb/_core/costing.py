"""What a request will cost (estimate) and what it did cost (from ``usage``), per API_FACTS §8.

* Estimate: the image tokens the model will bill (the gpt-image-2 formula, the gpt-image-1/1.5
  token table) or the per-image list price, for the size, quality (``auto`` → the upper bound),
  ``n`` and streamed partials, plus the prompt's text tokens and, for edits, the input images.
* Actual: ``usage`` × the table in force: text in, image in, image out (text out). When
  ``output_tokens_details`` is missing every output token is an image token.
* A model without a price costs *unknown*, never $0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cometnb._core.billing import status_may_be_billed
from cometnb._core.cost import Cost, format_usd
from cometnb._core.prices import ModelPrice, PriceTable, active_table

__all__ = [
    "actual_cost",
    "estimate",
    "estimate_all",
    "estimate_body",
    "failure_cost",
    "generation_cost",
    "gpt_image_2_tokens",
    "image_tokens",
    "prompt_tokens",
    "usage_problem",
]

_SIZE = re.compile(r"(\d+)x(\d+)")
_FORMULA = "gpt-image-2-formula"
_FORMULA_FACTOR = {"low": 16, "medium": 48, "high": 96}
_STANDARD_SIZES = ("1024x1024", "1536x1024", "1024x1536")
_QUALITY_ORDER = ("low", "standard", "medium", "high", "hd")
UNKNOWN_HINT = (
    "Add its price to a JSON file such as "
    '{"models": {"MODEL": {"per_image": 0.04}}} (or "text_in"/"image_in"/"image_out" USD per '
    "1M tokens) and set %config CometImg.prices_file = 'prices.json'; cometnb.refresh_prices() "
    "reads CometAPI's catalog."
)


def gpt_image_2_tokens(width: int, height: int, quality: str) -> int:
    """Output tokens of one gpt-image-2 image (community formula, API_FACTS §8).

    Example::

        >>> [gpt_image_2_tokens(1024, 1024, q) for q in ("low", "medium", "high")]
        [196, 1756, 7024]
    """
    f = _FORMULA_FACTOR[quality]
    long, short = max(width, height), min(width, height)
    s = (2 * f * short + long) // (2 * long)
    return math.ceil(f * s * (2_000_000 + width * height) / 4_000_000)


def prompt_tokens(prompt: str, table: PriceTable | None = None) -> int:
    """Text tokens of a prompt: about four characters a token, plus a few hidden ones."""
    table = table or active_table()
    per = table.extra("chars_per_text_token", 4.0) or 4.0
    return max(1, math.ceil(len(prompt) / per)) + int(table.extra("prompt_hidden_tokens", 0))


def _qualities(price: ModelPrice, table: PriceTable, quality: str | None) -> list[str]:
    """The qualities to price: the one asked for, or every one (``auto``/unknown: take the max)."""
    quality = quality or price.defaults.get("quality")
    known = _known_qualities(price, table)
    if quality in known:
        return [quality]
    return known or ["high"]


def _known_qualities(price: ModelPrice, table: PriceTable) -> list[str]:
    if price.billing == "per_image":
        return [q for q in price.per_image if q != "*"] or ["*"]
    if price.output_tokens == _FORMULA:
        return list(_FORMULA_FACTOR)
    return list(table.token_tables.get(price.output_tokens or "", {}))


def _sizes(size: str | None, price: ModelPrice, options: Sequence[str]) -> list[str]:
    size = size or price.defaults.get("size")
    if size and size in options:
        return [size]
    if size and _SIZE.fullmatch(size) and price.output_tokens == _FORMULA:
        return [size]
    return list(options) or list(_STANDARD_SIZES)


def image_tokens(
    model: str, size: str | None, quality: str | None, table: PriceTable | None = None
) -> int | None:
    """Output tokens one image of ``model`` will bill; ``None`` when the table cannot say.

    ``auto`` (or a missing quality or size) takes the most expensive choice: an upper bound.
    """
    table = table or active_table()
    price = table.get(model)
    if price is None or price.billing != "tokens":
        return None
    return _max_tokens(price, table, size, quality)


def _max_tokens(
    price: ModelPrice, table: PriceTable, size: str | None, quality: str | None
) -> int | None:
    if price.output_tokens == _FORMULA:
        best = 0
        for q in _qualities(price, table, quality):
            for s in _sizes(size, price, _STANDARD_SIZES):
                w, h = (int(x) for x in s.split("x"))
                best = max(best, gpt_image_2_tokens(w, h, q))
        return best
    grid = table.token_tables.get(price.output_tokens or "")
    if not grid:
        return None
    best = 0
    for q in _qualities(price, table, quality):
        row = grid.get(q, {})
        for s in _sizes(size, price, tuple(row)):
            best = max(best, row.get(s, max(row.values(), default=0)))
    return best or None


def _per_image(
    price: ModelPrice, table: PriceTable, size: str | None, quality: str | None
) -> float:
    best = 0.0
    for q in _qualities(price, table, quality):
        row = price.per_image.get(q) or price.per_image.get("*") or {}
        if "*" in row:
            best = max(best, row["*"])
            continue
        for s in _sizes(size, price, tuple(row)):
            best = max(best, row.get(s, 0.0))
    return best


def _upper(size: str | None, quality: str | None, price: ModelPrice) -> bool:
    """True when the request left a choice to the server, so the figure is an upper bound."""
    if price.billing == "per_image" and set(price.per_image) <= {"*"}:
        return False  # one flat price: nothing left to choose changes it
    q = quality or price.defaults.get("quality")
    s = size or price.defaults.get("size")
    return q in (None, "auto") or s in (None, "auto")


def _input_images(fields: Mapping[str, Any]) -> int:
    images = fields.get("images", fields.get("image"))
    if images is None:  # an EditBody carries its inputs as an attribute, not a key
        images = getattr(fields, "images", None) or None
    if images is None:
        return 0
    return len(images) if isinstance(images, (list, tuple)) else 1


def estimate_body(body: Mapping[str, Any], table: PriceTable | None = None) -> Cost:
    """The estimate for a request body (``ImageRequest.to_body()`` or a record's request)."""
    table = table or active_table()
    model = str(body.get("model") or "")
    price = table.get(model)
    if price is None:
        return Cost(None, True, f"no price for {model or 'this model'}", table.label)
    n = _int(body.get("n"), 1)
    size, quality = _str(body.get("size")), _str(body.get("quality"))
    partials = _int(body.get("partial_images"), 0) if body.get("stream") else 0
    text_in = prompt_tokens(str(body.get("prompt") or ""), table)
    inputs = _input_images(body)
    image_in = inputs * int(table.extra("input_image_tokens"))
    if body.get("input_fidelity") == "high":
        image_in += inputs * int(table.extra("input_fidelity_high_tokens"))
    usd = _rate(price.text_in) * text_in + _rate(price.image_in) * image_in
    bound = " (upper bound: auto)" if _upper(size, quality, price) else ""
    if price.billing == "per_image":
        each = _per_image(price, table, size, quality)
        usd += each * n
        basis = f"{n} × {format_usd(each)} per image{bound}"
    else:
        tokens = _max_tokens(price, table, size, quality)
        if tokens is None:
            return Cost(None, True, f"no token count for {model} images", table.label)
        out = (tokens + partials * int(table.extra("partial_image_tokens"))) * n
        usd += _rate(price.image_out) * out
        basis = f"{out} image tokens out, {text_in + image_in} in{bound}"
    return Cost(usd, True, basis, table.label)


def estimate(request: Any, table: PriceTable | None = None) -> Cost:
    """The estimate for an :class:`~cometnb._core.models.ImageRequest` (or a body dict)."""
    body = request.to_body() if hasattr(request, "to_body") else request
    images = getattr(request, "images", None)
    if images and "images" not in body:
        body = {**body, "images": images}
    return estimate_body(body, table)


def estimate_all(requests: Iterable[Any], table: PriceTable | None = None) -> list[Cost]:
    """Estimates for many requests with one price table (a grid's or a batch's budget check)."""
    table = table or active_table()
    return [estimate(r, table) for r in requests]


def actual_cost(
    body: Mapping[str, Any],
    usage: Mapping[str, Any] | None,
    images: int,
    meta: Mapping[str, Any] | None = None,
    table: PriceTable | None = None,
) -> Cost:
    """What a successful request cost: ``usage`` × the table; the estimate when it cannot be."""
    table = table or active_table()
    model = str(body.get("model") or "")
    price = table.get(model)
    if price is None:
        return Cost(None, False, f"no price for {model or 'this model'}", table.label)
    meta = meta or {}
    # What the server says it did beats what was asked (auto → the quality it chose).
    seen = {**body, **{k: meta[k] for k in ("size", "quality") if meta.get(k)}, "n": images}
    counts = _usage_counts(usage)
    if price.billing == "per_image":
        each = _per_image(price, table, _str(seen.get("size")), _str(seen.get("quality")))
        usd = each * images
        if counts is not None:
            usd += _rate(price.text_in) * counts[0] + _rate(price.image_in) * counts[1]
        upper = _upper(_str(seen.get("size")), _str(seen.get("quality")), price)
        return Cost(usd, upper, f"{images} × {format_usd(each)} per image", table.label)
    guess = estimate_body(seen, table)
    if counts is None:
        return Cost(guess.usd, True, f"no usage reported; {guess.basis}", table.label)
    problem = usage_problem(usage)
    if problem is not None:  # data from outside: never let it price a billed image below
        return Cost(guess.usd, True, f"usage implausible ({problem}); {guess.basis}", table.label)
    text_in, image_in, image_out, text_out = counts
    out_rate = price.text_out if price.text_out is not None else price.image_out
    usd = (
        _rate(price.text_in) * text_in
        + _rate(price.image_in) * image_in
        + _rate(price.image_out) * image_out
        + _rate(out_rate) * text_out
    )
    floor = _plausible_floor(seen, table)
    if floor is not None and usd < floor * _IMPLAUSIBLY_LOW:
        low = f"usage says {format_usd(usd)}, far below the least it can cost"
        return Cost(guess.usd, True, f"usage implausible ({low}); {guess.basis}", table.label)
    basis = f"usage: {image_out} image tokens out, {text_in + image_in} in"
    return Cost(usd, False, basis, table.label)


# Usage pricing a request under half of the cheapest way it could have been made is not
# believed (a $0.0001 answer for a $0.166 image): the estimate stands, labelled.
_IMPLAUSIBLY_LOW = 0.5


def _plausible_floor(seen: Mapping[str, Any], table: PriceTable) -> float | None:
    """The least ``seen`` can cost: at the lowest quality when the server chose (``auto``)."""
    quality = seen.get("quality")
    cheapest = {**seen, "quality": "low"} if quality in (None, "auto") else seen
    return estimate_body(cheapest, table).usd


def _digits(value: object) -> bool:
    return isinstance(value, str) and value.strip().isdigit()


def usage_problem(usage: object) -> str | None:
    """Why ``usage`` (as the server sent it) cannot price a request; ``None`` when it can.

    A count that is missing (``output_tokens``), not a number, not finite or negative is a
    problem; so is ``usage`` that is not an object.

    Example::

        >>> usage_problem({"input_tokens": 10, "output_tokens": -5})
        'output_tokens is negative'
        >>> usage_problem({"input_tokens": 10, "output_tokens": 4160}) is None
        True
    """
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        return "usage is not an object"
    if "output_tokens" not in usage:
        return "no output_tokens"
    return _bad_count(usage, "")


def _bad_count(values: Mapping[str, Any], prefix: str) -> str | None:
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found = _bad_count(value, f"{name}.")
            if found:
                return found
        elif (
            not key.endswith("tokens")
            or value is None
            or (isinstance(value, str) and value.strip().isdigit())
        ):
            continue
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} is not a number"
        elif not math.isfinite(value):
            return f"{name} is not finite"
        elif value < 0:
            return f"{name} is negative"
    return None


def failure_cost(
    body: Mapping[str, Any],
    error_type: str,
    status: int | None,
    table: PriceTable | None = None,
    *,
    may_be_billed: bool | None = None,
) -> Cost:
    """What a failed request cost: nothing when it was refused, else (maybe billed) its estimate.

    The rule is the retry policy's (:mod:`cometnb._core.billing`): ``may_be_billed`` as the
    client found it, else from ``status`` (408, 409, 5xx but 503: maybe billed; 429, 503, 4xx:
    not). Refused before sending: $0. Timed out, cut off, an unusable answer or cancelled in
    flight: the server may have billed it, so the estimate.
    """
    table = table or active_table()
    if error_type in ("ValidationError", "BudgetError"):
        return Cost(0.0, False, "not sent", table.label)
    if may_be_billed is None and status is not None:
        may_be_billed = status_may_be_billed(int(status))
    if may_be_billed is False:
        why = f"refused by the server (HTTP {status})" if status is not None else "refused"
        if error_type == "CancelledError":
            why = "cancelled before sending"
        return Cost(0.0, False, f"{why}: not billed", table.label)
    guess = estimate_body(body, table)
    return Cost(guess.usd, True, f"may have been billed; {guess.basis}", table.label)


def generation_cost(gen: Any) -> Cost:
    """A :class:`~cometnb._core.models.Generation`'s cost, priced now (the client stores it)."""
    if gen.error is not None or gen.status != "ok":
        error = gen.error
        status = getattr(error, "status", None)
        billed = getattr(error, "may_be_billed", None)
        name = type(error).__name__ if error else ""
        return failure_cost(gen.request, name, status, may_be_billed=billed)
    return actual_cost(gen.request, gen.usage, len(gen.images), gen.meta)


def _usage_counts(usage: Mapping[str, Any] | None) -> tuple[int, int, int, int] | None:
    """(text in, image in, image out, text out) from ``usage``; ``None`` when it has none."""
    if not isinstance(usage, Mapping):
        return None
    total_in, total_out = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if total_in is None and total_out is None:
        return None
    in_d = usage.get("input_tokens_details")
    in_d = in_d if isinstance(in_d, Mapping) else {}
    image_in = _count(in_d.get("image_tokens")) or 0
    text_in = _count(in_d.get("text_tokens"))
    text_in = max(0, (total_in or 0) - image_in) if text_in is None else text_in
    out_d = usage.get("output_tokens_details")
    if not isinstance(out_d, Mapping):
        return text_in, image_in, total_out or 0, 0  # no details: all output is image tokens
    text_out = _count(out_d.get("text_tokens")) or 0
    image_out = _count(out_d.get("image_tokens"))
    image_out = max(0, (total_out or 0) - text_out) if image_out is None else image_out
    return text_in, image_in, image_out, text_out


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return max(0, int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _rate(per_million: float | None) -> float:
    return (per_million or 0.0) / 1_000_000


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
