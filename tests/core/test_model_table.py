"""``cometnb.models()``: the registry as data (ModelTable of ModelInfo) and its HTML view."""

from __future__ import annotations

import datetime as dt

import pytest

import cometnb
from cometnb._core.model_registry import KNOWN_MODELS, MODELS, SHUTDOWN_DATES
from cometnb._core.model_table import ModelTable, models

TODAY = dt.date(2026, 12, 5)


@pytest.fixture
def table() -> ModelTable:
    return models(["gpt-image-2.7-flare", "gpt-image-2.6-flare", "not-an-image-model"], today=TODAY)


def test_rows_live_first_then_assumed_then_retired(table: ModelTable) -> None:
    statuses = [m.status_on(TODAY) for m in table]
    order = {"live": 0, "assumed": 1, "deprecated": 2, "retired": 3}
    assert statuses == sorted(statuses, key=order.__getitem__)
    assert {m.id for m in table} == {*KNOWN_MODELS, "gpt-image-2.7-flare"}
    assert len(table) == len(KNOWN_MODELS) + 1 and "not-an-image-model" not in table
    assert table.status("gpt-image-2.7-flare") == "assumed"
    for model in SHUTDOWN_DATES.keys() & set(KNOWN_MODELS):
        assert table.status(model) == "retired"
    assert next(m.id for m in table) == "gpt-image-2"


def test_lookup_and_unlisted_rows(table: ModelTable) -> None:
    assert table["gpt-image-2.6-sunburst"].formats[-2:] == ("gif", "svg")
    with pytest.raises(KeyError, match=r"Did you mean gpt-image-2\.6-flare"):
        table["gpt-image-2.6-flair"]
    everything = models(unlisted=True, today=TODAY)
    assert {m.id for m in everything} == set(MODELS)
    assert everything.status("gpt-image-2.5-flare-2026-09-08") == "live"


def test_prices_at_each_quality_with_labelled_upper_bounds(table: ModelTable) -> None:
    costs = table.prices_by_quality("gpt-image-2.6-flare")
    assert list(costs) == ["low", "medium", "high", "xhigh", "max", "auto"]
    assert costs["high"].usd == pytest.approx(7024 * 30 / 1e6)
    assert costs["low"].usd == pytest.approx(196 * 30 / 1e6)
    for q in ("xhigh", "max"):
        assert costs[q].usd is not None and costs[q].usd >= costs["high"].usd  # type: ignore[operator]
        assert "token counts are not published" in costs[q].basis
    assert table.prices_by_quality("dall-e-3")["hd"].usd == pytest.approx(0.08)
    assert table.prices_by_quality("qwen-image")["*"].usd is None  # unknown, never $0


def test_to_dataframe_one_row_per_model(table: ModelTable) -> None:
    frame = table.to_dataframe()
    assert list(frame.index) == [m.id for m in table]
    row = frame.loc["gpt-image-1-mini"]
    assert row["status"] == "retired" and row["retired_on"] == dt.date(2026, 12, 1)
    assert row["replacement"] == "gpt-image-2 (or gpt-image-2.6-flare)"
    assert frame.loc["gpt-image-2.6-flare", "complexity"] == "low, medium, high"
    assert frame.loc["gpt-image-2.5-flare", "complexity"] == ""
    assert frame.loc["gpt-image-2.7-flare", "source"] == "family"
    assert frame.loc["gpt-image-2", "prices"]["medium"] == pytest.approx(1756 * 30 / 1e6)


def test_public_names() -> None:
    assert cometnb.ModelTable is ModelTable and cometnb.models is models
    assert cometnb.ModelInfo is type(next(iter(models())))
