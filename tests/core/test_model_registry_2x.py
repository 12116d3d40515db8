"""GPT Image 2.5 / 2.6 rows, the family rule for later 2.N ids, and retired models (issue 23)."""

from __future__ import annotations

import datetime as dt

import pytest

from cometnb._core.errors import ValidationError
from cometnb._core.generations import ImageRequest
from cometnb._core.model_registry import (
    KNOWN_MODELS,
    MODELS,
    SHUTDOWN_DATES,
    get_caps,
    get_edit_caps,
    model_info,
    retired_message,
)
from cometnb._core.prices import builtin_table, estimate_body
from cometnb._core.validation import validate_request

NEW = (
    "gpt-image-2.5-flare",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.6-flare",
    "gpt-image-2.6-sunburst",
)
SNAPSHOTS = ("gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-sunburst-2026-09-08")
RETIRED = {
    "dall-e-2": "2026-05-12",
    "dall-e-3": "2026-05-12",
    "gpt-image-1": "2026-10-23",
    "gpt-image-1-mini": "2026-12-01",
    "gpt-image-1.5": "2026-12-01",
    "chatgpt-image-latest": "2026-12-01",
}
TODAY = dt.date(2026, 12, 5)


def reject(model: str, fields: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as info:
        validate_request("a lighthouse at dusk", model, fields)
    return str(info.value)


@pytest.mark.parametrize("model", NEW + SNAPSHOTS)
def test_new_rows_follow_api_facts_10(model: str) -> None:
    caps = get_caps(model)
    assert caps is not None and caps.name == model
    assert caps.qualities == ("low", "medium", "high", "xhigh", "max", "auto")
    assert caps.backgrounds == ("transparent", "opaque", "auto") and caps.max_n == 10
    assert caps.size_rule == get_caps("gpt-image-2").size_rule  # type: ignore[union-attr]
    edit = get_edit_caps(model)
    assert edit is not None and edit.max_images == 16 and edit.mask and not edit.fidelity
    info = model_info(model)
    assert info is not None and info.status_on(TODAY) == "live"
    assert (model in KNOWN_MODELS) == (model in NEW)  # snapshots are valid, not listed
    for quality in caps.qualities:
        validate_request("a lighthouse", model, {"quality": quality, "size": "2048x1152", "n": 10})


def test_only_26_takes_complexity_and_says_who_does() -> None:
    for model in ("gpt-image-2.6-flare", "gpt-image-2.6-sunburst"):
        for level in ("low", "medium", "high"):
            validate_request("a lighthouse", model, {"complexity": level, "quality": "max"})
        assert reject(model, {"complexity": "extreme"}) == (
            f"{model} accepts complexity low, medium or high; got extreme"
        )
    for model in ("gpt-image-2.5-flare", "gpt-image-2.5-sunburst", "gpt-image-2", "gpt-image-1"):
        message = reject(model, {"complexity": "low"})
        assert message.startswith("complexity applies to gpt-image-2.6-flare and gpt-image-2.6")
        assert f"{model} does not accept it" in message


def test_xhigh_and_max_refused_on_gpt_image_2() -> None:
    for quality in ("xhigh", "max"):
        assert reject("gpt-image-2", {"quality": quality}) == (
            f"gpt-image-2 accepts quality low, medium, high or auto; got {quality}"
        )


@pytest.mark.parametrize("fmt", ["svg", "gif"])
def test_svg_and_gif_are_26_formats_only(fmt: str) -> None:
    for model in ("gpt-image-2.6-flare", "gpt-image-2.6-sunburst"):
        validate_request("a lighthouse", model, {"output_format": fmt})
    # Not a 2.5 (nor gpt-image-2) format at all: the closed list says so.
    for model in ("gpt-image-2.5-flare", "gpt-image-2"):
        assert "png, jpeg or webp; got" in reject(model, {"output_format": fmt})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output_format": "svg", "n": 2}, "output_format=svg needs n=1; got n=2"),
        (
            {"output_format": "svg", "stream": True, "partial_images": 2},
            "output_format=svg needs stream=false; got stream=true",
        ),
        (
            {"output_format": "gif", "stream": True},
            "output_format=gif needs stream=false; got stream=true",
        ),
        (
            {"output_format": "svg", "output_compression": 50},
            "output_compression needs output_format jpeg or webp; got output_format=svg",
        ),
        (
            {"output_format": "gif", "output_compression": 50},
            "output_compression needs output_format jpeg or webp; got output_format=gif",
        ),
        (
            {"output_format": "gif", "partial_images": 1},
            "partial_images needs stream=true; got stream=false (the default)",
        ),
        (
            {"output_format": "gif", "frame_count": 17},
            "frame_count must be an integer from 2 to 16; got 17",
        ),
        (
            {"output_format": "gif", "frame_count": 1},
            "frame_count must be an integer from 2 to 16; got 1",
        ),
        (
            {"output_format": "gif", "frame_duration_ms": 10},
            "frame_duration_ms must be an integer of at least 20 (milliseconds); got 10",
        ),
        (
            {"output_format": "gif", "frame_duration_ms": 125},
            "frame_duration_ms must be a multiple of 10 ms (the API rounds to 10); got 125: "
            "use 120 or 130",
        ),
        (
            {"frame_count": 4},
            "frame_count needs output_format=gif; got output_format=png (the default)",
        ),
        (
            {"output_format": "webp", "frame_duration_ms": 100},
            "frame_duration_ms needs output_format=gif; got output_format=webp",
        ),
    ],
)
def test_svg_and_gif_rules_before_sending(fields: dict[str, object], message: str) -> None:
    assert reject("gpt-image-2.6-flare", fields) == message


def test_gif_fields_are_26_only_and_keywords_reach_the_body() -> None:
    assert reject("gpt-image-2.5-flare", {"frame_count": 4}).startswith(
        "frame_count applies to gpt-image-2.6-flare and gpt-image-2.6-sunburst only"
    )
    req = ImageRequest(
        "a spinning top",
        model="gpt-image-2.6-flare",
        output_format="gif",
        frame_count=12,
        frame_duration_ms=60,
    ).validate()
    body = req.to_body()
    assert (body["output_format"], body["frame_count"], body["frame_duration_ms"]) == (
        "gif",
        12,
        60,
    )
    validate_request("a top", "gpt-image-2.6-flare", {"output_format": "svg", "n": 1})


def test_complexity_keyword_goes_through_image_request() -> None:
    req = ImageRequest(
        "a lighthouse", model="gpt-image-2.6-flare", complexity="low", quality="xhigh"
    ).validate()
    assert req.to_body()["complexity"] == "low" and req.to_body()["quality"] == "xhigh"
    with pytest.raises(ValidationError, match="complexity"):
        ImageRequest("a lighthouse", model="gpt-image-2.5-sunburst", complexity="low").validate()


def test_later_family_id_gets_family_rules_marked_assumed() -> None:
    for model in ("gpt-image-2.7-flare", "gpt-image-2.9-sunburst-2027-06-01"):
        info = model_info(model)
        assert info is not None and info.status_on(TODAY) == "assumed" and not info.listed
        validate_request("a lighthouse", model, {"complexity": "medium", "quality": "xhigh"})
        validate_request("a lighthouse", model, {"output_format": "svg"})
        assert "needs n=1" in reject(model, {"output_format": "svg", "n": 3})
        assert estimate_body({"model": model, "prompt": "x", "quality": "high"}).known
    for unknown in ("gpt-image-2.5-flare-x", "gpt-image-3-flare", "gpt-image-2.6"):
        assert model_info(unknown) is None


def test_prices_of_new_models_and_their_snapshots() -> None:
    table = builtin_table()
    for model in NEW + SNAPSHOTS:
        price = table.get(model)
        assert price is not None
        assert (price.text_in, price.text_in_cached, price.image_in, price.image_in_cached) == (
            5,
            1.25,
            8,
            2,
        )
        assert price.image_out == 30


@pytest.mark.parametrize("model", NEW)
def test_xhigh_and_max_estimates_are_labelled_upper_bounds(model: str) -> None:
    body = {"model": model, "prompt": "a lighthouse at dusk", "size": "1024x1024"}
    high = estimate_body({**body, "quality": "high"})
    assert high.usd is not None and "upper bound" not in high.basis
    factor = builtin_table().extra("unpublished_quality_factor")
    for quality in ("xhigh", "max"):
        cost = estimate_body({**body, "quality": quality, "n": 3})
        assert cost.usd is not None and cost.usd >= 3 * high.usd
        assert f"upper bound: {quality} token counts are not published" in cost.basis
        assert f"high × {factor:g}" in cost.basis
    # 1024² high on the gpt-image-2 formula is 7024 tokens at $30 per 1M.
    assert high.usd == pytest.approx(7024 * 30 / 1e6, rel=0.01)


@pytest.mark.parametrize("model", sorted(RETIRED))
def test_every_retired_id_has_date_replacement_and_one_line(model: str) -> None:
    info = MODELS[model]
    assert info.retired_on is not None and info.retired_on.isoformat() == RETIRED[model]
    assert info.replacement == "gpt-image-2 (or gpt-image-2.6-flare)"
    assert info.status_on(TODAY) == "retired"
    assert retired_message(model) == (
        f"{model} was shut down on {RETIRED[model]}; use gpt-image-2 (or gpt-image-2.6-flare)"
    )


def test_retired_list_is_complete_and_live_ids_have_no_message() -> None:
    assert set(SHUTDOWN_DATES) == set(RETIRED)
    for model in (*NEW, "gpt-image-2", "qwen-image", "brand-new-model"):
        assert retired_message(model) is None
