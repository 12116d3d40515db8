"""Cached-input rates of GPT Image 2.5 / 2.6 (API_FACTS §10; the file name avoids "_cache", which
the sdist test reads as a tool cache): the actual cost charges the input
tokens ``usage`` reports as cached at the cached rate, whichever of the two shapes it uses, and
the full rate when it reports none or the model has no cached rate (issue 23)."""

from __future__ import annotations

from typing import Any

import pytest

from cometnb._core.prices import actual_cost, builtin_table, table_from_catalog

EDIT_26 = {"model": "gpt-image-2.6-flare", "quality": "medium", "size": "1024x1024"}


def _usage(**cached: Any) -> dict[str, Any]:
    """A 2.6 edit: 40 text + 1,552 image tokens in (two 1024² references), 1,756 image out."""
    return {
        "input_tokens": 1592,
        "input_tokens_details": {"text_tokens": 40, "image_tokens": 1552, **cached},
        "output_tokens": 1756,
        "output_tokens_details": {"image_tokens": 1756, "text_tokens": 0},
        "total_tokens": 3348,
    }


FULL = 40 * 5e-6 + 1552 * 8e-6 + 1756 * 30e-6


def test_no_cached_count_charges_the_full_input_rates() -> None:
    cost = actual_cost(EDIT_26, _usage(), 1, table=builtin_table())
    assert cost.usd == pytest.approx(FULL) and "cached" not in cost.basis


def test_split_cached_counts_use_each_cached_rate() -> None:
    usage = _usage(
        cached_tokens=800, cached_tokens_details={"text_tokens": 24, "image_tokens": 776}
    )
    cost = actual_cost(EDIT_26, usage, 1, table=builtin_table())
    expected = (16 * 5 + 24 * 1.25 + 776 * 8 + 776 * 2 + 1756 * 30) / 1e6
    assert cost.usd == pytest.approx(expected)
    assert cost.usd < FULL and not cost.estimated
    assert "800 of them cached" in cost.basis


def test_a_total_alone_is_laid_on_text_first_never_below_the_split() -> None:
    usage = _usage(cached_tokens=800)
    cost = actual_cost(EDIT_26, usage, 1, table=builtin_table())
    # 40 text tokens at 1.25 instead of 5, the other 760 cached tokens on the image side
    expected = (40 * 1.25 + 760 * 2 + 792 * 8 + 1756 * 30) / 1e6
    assert cost.usd == pytest.approx(expected)
    split = actual_cost(
        EDIT_26,
        _usage(cached_tokens=800, cached_tokens_details={"text_tokens": 0, "image_tokens": 800}),
        1,
        table=builtin_table(),
    )
    assert cost.usd is not None and split.usd is not None and cost.usd >= split.usd


@pytest.mark.parametrize(
    "cached",
    [
        {"cached_tokens": 99_999},  # more than came in: capped at the input counts
        {"cached_tokens_details": {"text_tokens": 99_999, "image_tokens": 99_999}},
    ],
)
def test_cached_counts_are_capped_at_what_came_in(cached: dict[str, Any]) -> None:
    cost = actual_cost(EDIT_26, _usage(**cached), 1, table=builtin_table())
    assert cost.usd == pytest.approx((40 * 1.25 + 1552 * 2 + 1756 * 30) / 1e6)


def test_a_null_cached_count_counts_as_none() -> None:
    cost = actual_cost(EDIT_26, _usage(cached_tokens=None), 1, table=builtin_table())
    assert cost.usd == pytest.approx(FULL) and not cost.estimated


@pytest.mark.parametrize("bad", [-5, "lots", float("nan"), True])
def test_a_broken_cached_count_is_implausible_usage(bad: Any) -> None:
    # Data from outside: the same rule as every other count (the estimate stands, labelled).
    cost = actual_cost(EDIT_26, _usage(cached_tokens=bad), 1, table=builtin_table())
    assert cost.estimated and "usage implausible (input_tokens_details.cached_tokens" in cost.basis


def test_a_model_without_cached_rates_pays_the_full_rate() -> None:
    body = {**EDIT_26, "model": "gpt-image-2"}
    cost = actual_cost(body, _usage(cached_tokens=800), 1, table=builtin_table())
    assert cost.usd == pytest.approx(FULL)


def test_a_catalog_price_scales_the_cached_rates_with_its_own() -> None:
    catalog = {"data": [{"id": "gpt-image-2.6-flare", "pricing": {"input": 4, "output": 24}}]}
    table = builtin_table().merged(table_from_catalog(catalog, builtin_table(), source="t"))
    price = table.get("gpt-image-2.6-flare")
    assert price is not None
    assert (price.text_in, price.text_in_cached) == (4.0, 1.0)
    assert (price.image_in, price.image_in_cached) == pytest.approx((6.4, 1.6))
