"""The model registry: one row per model, and every table the checkers read is a view of it."""

from __future__ import annotations

import datetime as dt

import pytest

from cometnb._core.errors import ValidationError
from cometnb._core.generations import ImageRequest
from cometnb._core.model_registry import (
    CAPABILITIES,
    EDIT_CAPABILITIES,
    KNOWN_MODELS,
    MODELS,
    SHUTDOWN_DATES,
    edit_route,
    model_gone_message,
    model_info,
)
from cometnb._core.prices import builtin_table


def test_every_table_is_a_view_of_the_rows() -> None:
    assert set(CAPABILITIES) == {m.id for m in MODELS.values() if m.generation is not None}
    assert set(EDIT_CAPABILITIES) == set(MODELS)
    assert {m.id: m.retired_on for m in MODELS.values() if m.retired_on} == SHUTDOWN_DATES
    assert tuple(m.id for m in MODELS.values() if m.listed) == KNOWN_MODELS
    # Messages quote a capability record's name: each carries its row's id.
    for info in MODELS.values():
        assert info.edit.name == info.id
        assert info.generation is None or info.generation.name == info.id


def test_lists_offer_no_alias_and_no_edit_only_model() -> None:
    assert KNOWN_MODELS[0] == "gpt-image-2"
    for hidden in ("gpt-image-2-2026-04-21", "chatgpt-image-latest", "qwen-image-edit"):
        assert hidden in MODELS and hidden not in KNOWN_MODELS
    assert MODELS["qwen-image-edit"].generation is None
    assert MODELS["qwen-image-edit"].edits and MODELS["qwen-image-edit"].max_images == 0


def test_a_row_answers_the_model_questions() -> None:
    gpt = model_info("gpt-image-2")
    assert gpt is not None
    assert gpt.family == "gpt-image" and gpt.source == "built-in"
    assert gpt.qualities == ("low", "medium", "high", "auto")
    assert gpt.formats == ("png", "jpeg", "webp")
    assert gpt.max_images == 10 and gpt.edits and gpt.replacement is None
    assert model_info("dall-e-3") is not None and not MODELS["dall-e-3"].edits
    assert model_info("no-such-model") is None
    assert edit_route("doubao-seedream-4-5-251128") == "json"
    assert edit_route("gpt-image-1") == "multipart"


@pytest.mark.parametrize(
    ("model", "day", "status"),
    [
        ("gpt-image-2", dt.date(2030, 1, 1), "live"),
        ("dall-e-2", dt.date(2026, 5, 11), "deprecated"),
        ("dall-e-2", dt.date(2026, 5, 12), "retired"),
        ("gpt-image-1", dt.date(2026, 6, 1), "deprecated"),
        ("chatgpt-image-latest", dt.date(2026, 12, 2), "retired"),
    ],
)
def test_status_follows_the_shutdown_date(model: str, day: dt.date, status: str) -> None:
    assert MODELS[model].status_on(day) == status


def test_the_retired_message_reads_the_row() -> None:
    line = model_gone_message("dall-e-3", ["gpt-image-2"], today=dt.date(2026, 6, 1))
    assert line.startswith("dall-e-3 was shut down on 2026-05-12; use gpt-image-2 (or gpt-image")
    # Before the date the row is deprecated: the line says when it shuts down.
    early = model_gone_message("gpt-image-1-mini", None, today=dt.date(2026, 11, 1))
    assert "OpenAI shuts it down on 2026-12-01" in early


def test_every_row_links_to_its_prices_or_is_known_unpriced() -> None:
    table = builtin_table()
    priced = {m.id for m in MODELS.values() if table.get(m.price_id) is not None}
    assert {"gpt-image-2", "gpt-image-1.5", "gpt-image-1", "gpt-image-1-mini"} <= priced
    assert {"dall-e-2", "dall-e-3", "gpt-image-2-2026-04-21"} <= priced
    # Unpriced models cost "unknown", never $0: the price link is there, the row is not.
    assert "qwen-image" not in priced and MODELS["qwen-image"].price_id == "qwen-image"


def test_validation_asks_the_row() -> None:
    """A dall-e-3 row says n is at most 1 and it takes no input images: both refused."""
    with pytest.raises(ValidationError, match="n=2"):
        ImageRequest(prompt="a fox", model="dall-e-3", n=2).validate()
    assert MODELS["dall-e-3"].max_images == 1
