"""Prices and costs: the built-in table, estimates against API_FACTS §8, actual costs from the
shared usage samples, overrides and CometAPI's catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SHARED_FIXTURES

from cometnb._core import settings as _settings
from cometnb._core.errors import ValidationError
from cometnb._core.prices import (
    Cost,
    PriceTable,
    active_table,
    actual_cost,
    builtin_table,
    estimate_body,
    failure_cost,
    gpt_image_2_tokens,
    image_tokens,
    load_table,
    prompt_tokens,
    table_from_catalog,
)

PROMPT = "a lighthouse on a cliff at dusk, oil painting"
TEXT = prompt_tokens(PROMPT, builtin_table())  # 12 visible + 6 hidden text tokens


def _usage(name: str) -> dict[str, Any]:
    return dict(json.loads((SHARED_FIXTURES / name).read_text())["usage"])


def _est(model: str, **fields: Any) -> Cost:
    return estimate_body({"model": model, "prompt": PROMPT, **fields}, builtin_table())


# --- the built-in table ------------------------------------------------------------------------


def test_builtin_table_is_dated_and_names_its_source() -> None:
    table = builtin_table()
    assert table.date == "2026-12-01"
    assert "OpenAI" in table.source and "CometAPI" in table.source
    assert table.label == "built-in 2026-12-01"
    rates = {m: (p.text_in, p.image_in, p.image_out) for m, p in table.models.items()}
    assert rates["gpt-image-2"] == (5.0, 8.0, 30.0)
    assert rates["gpt-image-1.5"] == (5.0, 8.0, 32.0)
    assert rates["gpt-image-1"] == (5.0, 10.0, 40.0)
    assert rates["gpt-image-1-mini"] == (2.0, 2.5, 8.0)


def test_unknown_models_have_no_price_never_zero() -> None:
    table = builtin_table()
    assert table.get("qwen-image") is None
    assert table.get("chatgpt-image-latest") is None
    cost = _est("qwen-image")
    assert cost.usd is None and cost.label == "cost unknown"
    assert actual_cost({"model": "qwen-image"}, None, 1, table=table).usd is None


def test_dated_alias_uses_its_models_price() -> None:
    assert _est("gpt-image-2-2026-04-21", size="1024x1024", quality="low").usd == pytest.approx(
        _est("gpt-image-2", size="1024x1024", quality="low").usd
    )


# --- output tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1024x1024", (196, 1756, 7024)), ("1024x1536", (158, 1372, 5488))],
)
def test_gpt_image_2_formula_matches_the_fact_sheet(size: str, expected: tuple[int, ...]) -> None:
    w, h = (int(x) for x in size.split("x"))
    assert tuple(gpt_image_2_tokens(w, h, q) for q in ("low", "medium", "high")) == expected
    # the formula is symmetric in width and height
    assert tuple(gpt_image_2_tokens(h, w, q) for q in ("low", "medium", "high")) == expected


@pytest.mark.parametrize(
    ("quality", "tokens"),
    [
        ("low", (272, 408, 400)),
        ("medium", (1056, 1584, 1568)),
        ("high", (4160, 6240, 6208)),
    ],
)
@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1.5"])
def test_gpt_image_1_token_table(model: str, quality: str, tokens: tuple[int, ...]) -> None:
    sizes = ("1024x1024", "1024x1536", "1536x1024")
    assert tuple(image_tokens(model, s, quality, builtin_table()) for s in sizes) == tokens


def test_auto_quality_and_size_estimate_the_upper_bound() -> None:
    table = builtin_table()
    assert image_tokens("gpt-image-2", "1024x1024", "auto", table) == 7024
    assert image_tokens("gpt-image-2", None, None, table) == 7024  # every standard size
    assert image_tokens("gpt-image-1", "auto", "auto", table) == 6240
    assert image_tokens("gpt-image-1", None, "low", table) == 408
    assert "upper bound" in _est("gpt-image-2", quality="auto").basis


def test_gpt_image_2_custom_size_uses_the_formula() -> None:
    assert image_tokens("gpt-image-2", "2048x1152", "high", builtin_table()) == (
        gpt_image_2_tokens(2048, 1152, "high")
    )


# --- estimates in USD ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "per_image"),
    [
        ("gpt-image-2", (0.006, 0.053, 0.211)),
        ("gpt-image-1.5", (0.009, 0.034, 0.133)),
        ("gpt-image-1", (0.011, 0.042, 0.167)),
        ("gpt-image-1-mini", (0.005, 0.011, 0.036)),
    ],
)
def test_square_estimates_match_the_list_prices(model: str, per_image: tuple[float, ...]) -> None:
    got = [_est(model, size="1024x1024", quality=q) for q in ("low", "medium", "high")]
    # The list price is the image alone; the estimate adds the prompt's few text tokens.
    for cost, listed in zip(got, per_image, strict=True):
        assert cost.estimated and cost.usd is not None
        assert cost.usd == pytest.approx(listed, abs=0.0006)


def test_gpt_image_1_medium_square_is_about_four_cents() -> None:
    cost = _est("gpt-image-1", size="1024x1024", quality="medium")
    assert cost.usd == pytest.approx(1056 * 40e-6 + TEXT * 5e-6)
    assert cost.label == "≈ $0.04"


@pytest.mark.parametrize(
    ("model", "size", "quality", "usd"),
    [
        ("dall-e-3", "1024x1024", "standard", 0.04),
        ("dall-e-3", "1792x1024", "standard", 0.08),
        ("dall-e-3", "1024x1792", "hd", 0.12),
        ("dall-e-3", "1792x1024", "hd", 0.12),
        ("dall-e-3", "1024x1024", "hd", 0.08),
        ("dall-e-2", "256x256", None, 0.016),
        ("dall-e-2", "512x512", None, 0.018),
        ("dall-e-2", "1024x1024", None, 0.020),
        ("gpt-image-1-mini", "1536x1024", "high", 0.052),
    ],
)
def test_per_image_prices(model: str, size: str, quality: str | None, usd: float) -> None:
    cost = _est(model, size=size, quality=quality)
    # dall-e has no token rates; mini adds its prompt's text tokens to the list price
    tolerance = 1e-12 if model.startswith("dall") else 0.0001
    assert cost.usd == pytest.approx(usd, abs=tolerance)


def test_dall_e_defaults_are_standard_square() -> None:
    assert _est("dall-e-3").usd == pytest.approx(0.04)
    assert "upper bound" not in _est("dall-e-3").basis


def test_n_and_partials_multiply_and_add() -> None:
    one = _est("gpt-image-2", size="1024x1024", quality="medium")
    four = _est("gpt-image-2", size="1024x1024", quality="medium", n=4)
    text = TEXT * 5e-6
    assert one.usd == pytest.approx(1756 * 30e-6 + text)
    assert four.usd == pytest.approx(4 * 1756 * 30e-6 + text)
    streamed = _est("gpt-image-2", size="1024x1024", quality="low", stream=True, partial_images=2)
    assert streamed.usd == pytest.approx((196 + 200) * 30e-6 + text)
    # partial_images without stream is not sent as a stream: no surcharge
    assert _est("gpt-image-2", size="1024x1024", quality="low", partial_images=2).usd == (
        pytest.approx(196 * 30e-6 + text)
    )


def test_edits_count_input_images_and_fidelity() -> None:
    plain = _est("gpt-image-1", size="1024x1024", quality="low")
    two = _est("gpt-image-1", size="1024x1024", quality="low", images=["a.png", "b.png"])
    assert (two.usd or 0) - (plain.usd or 0) == pytest.approx(2 * 194 * 10e-6)
    high = _est(
        "gpt-image-1", size="1024x1024", quality="low", image="a.png", input_fidelity="high"
    )
    assert (high.usd or 0) - (plain.usd or 0) == pytest.approx((194 + 6000) * 10e-6)


def test_image_request_estimate_sees_images_attribute() -> None:
    from cometnb._core.prices import estimate

    class WithImages:
        images = ("one.png", "two.png", "three.png")

        def to_body(self) -> dict[str, Any]:
            return {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "low"}

    cost = estimate(WithImages(), builtin_table())
    assert cost.usd == pytest.approx(196 * 30e-6 + TEXT * 5e-6 + 3 * 194 * 8e-6)


# --- actual costs from usage ---------------------------------------------------------------------


def test_actual_from_the_gpt_image_2_sample() -> None:
    usage = _usage("gpt-image-2.json")  # 16 text in, 208 out, no output_tokens_details
    cost = actual_cost({"model": "gpt-image-2"}, usage, 1, table=builtin_table())
    assert not cost.estimated
    assert cost.usd == pytest.approx(16 * 5e-6 + 208 * 30e-6)  # every output token is an image's
    assert cost.label == "$0.006"
    assert cost.prices == "built-in 2026-12-01"


def test_actual_from_the_edit_sample_counts_input_image_tokens() -> None:
    usage = _usage("edit-gpt-image.json")  # gateway fields must be ignored
    cost = actual_cost({"model": "gpt-image-1"}, usage, 1, table=builtin_table())
    assert cost.usd == pytest.approx(17 * 5e-6 + 768 * 10e-6 + 196 * 40e-6)


def test_actual_from_the_stream_sample() -> None:
    text = (SHARED_FIXTURES / "stream.txt").read_text()
    completed = next(line for line in text.splitlines() if '"image_generation.completed"' in line)
    usage = json.loads(completed.removeprefix("data: "))["usage"]
    cost = actual_cost({"model": "gpt-image-2"}, usage, 1, table=builtin_table())
    assert cost.usd == pytest.approx(16 * 5e-6 + 208 * 30e-6)


def test_actual_with_output_details_prices_text_out() -> None:
    usage = {
        "input_tokens": 20,
        "output_tokens": 1800,
        "output_tokens_details": {"image_tokens": 1756, "text_tokens": 44},
    }
    cost = actual_cost({"model": "gpt-image-2"}, usage, 1, table=builtin_table())
    # no text_out rate in the table: text output is priced at the image rate (never lower)
    assert cost.usd == pytest.approx(20 * 5e-6 + 1800 * 30e-6)


def test_actual_without_usage_falls_back_to_the_estimate_marked() -> None:
    body = {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "auto"}
    # the server said which quality it chose: the fallback uses it, not the upper bound
    cost = actual_cost(body, None, 1, {"quality": "medium"}, table=builtin_table())
    assert cost.estimated and "no usage" in cost.basis
    assert cost.usd == pytest.approx(1756 * 30e-6 + TEXT * 5e-6)
    assert cost.label == "≈ $0.05"


def test_dall_e_actual_is_the_list_price_per_image() -> None:
    body = {"model": "dall-e-3", "prompt": PROMPT, "size": "1792x1024", "quality": "hd"}
    cost = actual_cost(body, None, 1, table=builtin_table())
    assert cost == Cost(0.12, False, "1 × $0.120 per image", "built-in 2026-12-01")
    assert cost.label == "$0.120"


def test_failures_cost_nothing_unless_maybe_billed() -> None:
    body = {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "low"}
    table = builtin_table()
    assert failure_cost(body, "ValidationError", None, table).usd == 0.0
    assert failure_cost(body, "APIError", 400, table).usd == 0.0
    timed_out = failure_cost(body, "APIError", 524, table)
    assert timed_out.estimated and timed_out.usd == pytest.approx(196 * 30e-6 + TEXT * 5e-6)
    assert failure_cost(body, "ResponseError", None, table).estimated


def test_cost_labels_and_sums() -> None:
    assert Cost(0.05268, False, "").label == "$0.053"
    assert Cost(0.05268, True, "").label == "≈ $0.05"
    assert Cost(0.00588, True, "").label == "≈ $0.006"
    assert Cost(12.5, False, "").label == "$12.50"
    total = Cost.total([Cost(0.1, False, ""), Cost(0.2, True, "")])
    assert total.usd == pytest.approx(0.3) and total.estimated
    assert Cost.total([Cost(0.1, False, ""), Cost(None, False, "")]).usd is None
    assert Cost.from_dict(Cost(0.25, True, "b", "x 1").to_dict()) == Cost(0.25, True, "b", "x 1")


# --- overrides -----------------------------------------------------------------------------------


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_prices_file_overrides_and_adds_models(tmp_path: Path) -> None:
    override = _write(
        tmp_path / "prices.json",
        {
            "date": "2026-12-24",
            "source": "my contract",
            "models": {"gpt-image-2": {"image_out": 15}, "qwen-image": {"per_image": 0.03}},
        },
    )
    assert active_table() is builtin_table()
    _settings.active().prices_file = str(override)  # type: ignore[attr-defined]
    table = active_table()
    assert table.date == "2026-12-24" and "my contract" in table.source
    assert table.get("gpt-image-2").image_out == 15.0  # type: ignore[union-attr]
    assert table.get("gpt-image-2").image_in == 8.0  # type: ignore[union-attr]  # kept
    qwen = estimate_body({"model": "qwen-image", "prompt": PROMPT}, table)
    assert qwen.usd == pytest.approx(0.03) and "upper bound" not in qwen.basis
    done = actual_cost({"model": "qwen-image", "prompt": PROMPT}, None, 1, table=table)
    assert done == Cost(0.03, False, "1 × $0.030 per image", table.label)
    low = estimate_body(
        {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "low"}, table
    )
    assert low.usd == pytest.approx(196 * 15e-6 + TEXT * 5e-6)
    # editing the file takes effect without a restart
    _write(override, {"date": "2026-12-25", "models": {"gpt-image-2": {"image_out": 20}}})
    import os

    os.utime(override, (1, 1))
    assert active_table().get("gpt-image-2").image_out == 20.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([1, 2], "JSON object"),
        ({"models": {"m": {"image_out": "cheap"}}}, "must be a number"),
        ({"models": {"m": {"image_out": -1}}}, "must not be negative"),
        ({"models": {"m": {"billing": "monthly", "image_out": 1}}}, '"tokens" or "per_image"'),
        # every section of the wrong shape: one short ValidationError naming the key
        ({"models": {}, "extras": {"chars_per_text_token": "four"}}, 'extras."chars_per_'),
        ({"models": {}, "extras": [1]}, '"extras" must be a JSON object'),
        ({"models": ["gpt-image-2"]}, '"models" must be a JSON object'),
        ({"models": {"gpt-image-2": [30]}}, "prices of gpt-image-2 must be a JSON object"),
        ({"models": {}, "token_tables": [1]}, '"token_tables" must be a JSON object'),
        ({"models": {}, "token_tables": {"t": [1]}}, 'token_tables."t" must be'),
        ({"models": {}, "token_tables": {"t": {"low": 5}}}, 'token_tables."t".low must be'),
        ({"models": {}, "token_tables": {"t": {"low": {"1024x1024": "many"}}}}, "whole number"),
        ({"models": {}, "aliases": ["a"]}, '"aliases" must be a JSON object'),
        ({"models": {}, "aliases": {"a": 5}}, 'aliases."a" must be the name of a model'),
        ({"models": {"m": {"per_image": 1, "defaults": [1]}}}, "defaults of m must be"),
        ({"models": {"m": {"image_out": 30, "output_tokens": 5}}}, "output_tokens of m"),
        ({"models": {}, "problems": 5}, '"problems" must be a list'),
        ({"models": {}, "date": {"y": 1}}, '"date" must be text'),
    ],
)
def test_bad_price_files_are_refused_clearly(tmp_path: Path, data: Any, words: str) -> None:
    path = _write(tmp_path / "p.json", data)
    with pytest.raises(ValidationError) as info:
        load_table(path)
    err = info.value
    assert type(err) is ValidationError and words in err.message
    assert str(path) in err.message and "\n" not in str(err)  # names the file; one paragraph
    assert err.hint is not None and "CometImg.prices_file = None" in err.hint


def test_a_price_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_text('\ufeff{"models": {"qwen-image": {"per_image": 0.03}}}', encoding="utf-8")
    assert load_table(path).get("qwen-image") is not None


def test_a_partial_override_merges_onto_the_built_in_entry_field_by_field() -> None:
    base = builtin_table()
    body = {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "low"}
    table = base.merged(PriceTable.from_dict({"models": {"gpt-image-2": {"text_in": 4}}}))
    price = table.get("gpt-image-2")
    assert price is not None and price.billing == "tokens" and price.text_in == 4.0
    assert price.image_out == 30.0 and price.output_tokens == "gpt-image-2-formula"
    cost = estimate_body(body, table)
    assert cost.usd == pytest.approx(196 * 30e-6 + TEXT * 4e-6)
    # a per-image model: only the stated size changes, the billing kind is kept
    top = {"models": {"dall-e-3": {"per_image": {"hd": {"1792x1024": 0.2}}}}}
    dalle = base.merged(PriceTable.from_dict(top)).get("dall-e-3")
    assert dalle is not None and dalle.billing == "per_image"
    assert dalle.per_image["hd"] == {"1024x1024": 0.08, "1792x1024": 0.2, "1024x1792": 0.12}
    assert dalle.per_image["standard"]["1024x1024"] == 0.04
    # a flat price (every quality, or every size of one) replaces what it covers
    flat_all = base.merged(PriceTable.from_dict({"models": {"dall-e-3": {"per_image": 0.05}}}))
    assert flat_all.get("dall-e-3").per_image == {"*": {"*": 0.05}}  # type: ignore[union-attr]
    hd_flat = {"models": {"dall-e-3": {"per_image": {"hd": 0.1}}}}
    hd = base.merged(PriceTable.from_dict(hd_flat)).get("dall-e-3")
    assert hd is not None and hd.per_image["hd"] == {"*": 0.1}
    assert hd.per_image["standard"]["1024x1024"] == 0.04
    # an image_out alone on a per-image model changes the rate, not how it bills
    mini = base.merged(PriceTable.from_dict({"models": {"gpt-image-1-mini": {"image_out": 9}}}))
    assert mini.get("gpt-image-1-mini").billing == "per_image"  # type: ignore[union-attr]
    mini_body = {**body, "model": "gpt-image-1-mini"}
    assert estimate_body(mini_body, mini).usd == pytest.approx(estimate_body(mini_body, base).usd)
    # stating billing does switch it
    flat = {"models": {"gpt-image-2": {"billing": "per_image", "per_image": 0.01}}}
    assert estimate_body(body, base.merged(PriceTable.from_dict(flat))).usd == pytest.approx(
        0.01 + TEXT * 5e-6
    )


def test_missing_price_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read the price file") as info:
        load_table(tmp_path / "nope.json")
    assert "CometImg.prices_file" in str(info.value)


def test_table_round_trips_through_json() -> None:
    table = builtin_table()
    again = PriceTable.from_dict(json.loads(json.dumps(table.to_dict())), origin="built-in")
    assert again.models == table.models and again.token_tables == table.token_tables


# --- CometAPI's catalog ------------------------------------------------------------------------


def test_catalog_fixture_is_read_and_scaled() -> None:
    data = json.loads((SHARED_FIXTURES / "api-models.json").read_text())
    table = table_from_catalog(data, builtin_table(), source="fixture")
    assert table.problems == ()
    two = table.get("gpt-image-2")
    assert two is not None and (two.text_in, two.image_out) == (4.0, 24.0)
    assert two.image_in == pytest.approx(6.4)  # the built-in's image/text ratio, 0.8x like output
    mini = table.get("gpt-image-1-mini")
    assert mini is not None and mini.billing == "per_image"
    assert mini.per_image["medium"]["1024x1024"] == pytest.approx(0.011 * 0.8)
    dalle = table.get("dall-e-3")
    assert dalle is not None and dalle.per_image["hd"]["1792x1024"] == pytest.approx(0.12)
    qwen = table.get("qwen-image")
    assert qwen is not None and qwen.per_image == {"*": {"*": 0.03}}
    merged = builtin_table().merged(table)
    est = estimate_body(
        {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "low"}, merged
    )
    assert est.usd == pytest.approx(196 * 24e-6 + TEXT * 4e-6)
    assert merged.label.startswith("catalog ")


@pytest.mark.parametrize(
    "data",
    [
        {"models": [{"model": "gpt-image-2", "pricing": {"input": "4", "output": "24"}}]},
        [{"name": "gpt-image-2", "input": 4, "output": 24}],
        {"data": {"gpt-image-2": {"pricing": {"input": 4, "output": 24}}}},
    ],
)
def test_catalog_shapes_are_tolerated(data: Any) -> None:
    table = table_from_catalog(data, builtin_table(), source="test")
    assert table.get("gpt-image-2").image_out == 24.0  # type: ignore[union-attr]


def test_catalog_reports_what_it_could_not_read() -> None:
    data = {
        "data": [
            {"id": "gpt-image-2", "pricing": {"input": "n/a", "output": "lots"}},
            {"id": "euro-model", "pricing": {"currency": "EUR", "per_request": 0.1}},
            {"pricing": {"per_request": 0.1}},
            {
                "id": "sized",
                "pricing": {"currency": "USD / K Tokens", "input": 0.004, "output": 0.024},
            },
        ]
    }
    table = table_from_catalog(data, builtin_table(), source="test")
    assert table.get("gpt-image-2") is None and table.get("euro-model") is None
    assert table.get("sized").image_out == pytest.approx(24.0)  # type: ignore[union-attr]
    text = " | ".join(table.problems)
    assert "gpt-image-2: could not read input, output" in text
    assert "EUR" in text and "entry 2 names no model" in text
    assert table_from_catalog({"oops": 1}, builtin_table(), source="t").problems


def test_refresh_prices_keeps_the_catalog_dated(tmp_path: Path, isolated_env: Path) -> None:
    from cometnb._client.lookups import catalog_url, refresh_prices

    body = (SHARED_FIXTURES / "api-models.json").read_bytes()
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    base = "http://127.0.0.1:9/v1"
    assert catalog_url(base) == "http://127.0.0.1:9/api/models"
    table = refresh_prices(base, transport=httpx.MockTransport(answer))
    assert [str(r.url) for r in seen] == ["http://127.0.0.1:9/api/models"]
    assert "authorization" not in seen[0].headers  # a public catalog: no key sent
    kept = sorted((isolated_env / "prices").glob("catalog-*.json"))
    assert len(kept) == 1
    assert json.loads(kept[0].read_text())["source"].startswith("CometAPI catalog")
    assert table.get("gpt-image-2").image_out == 24.0  # type: ignore[union-attr]
    assert active_table().get("qwen-image") is not None  # in force from now on


@pytest.mark.parametrize("into_other_folder", [False, True])
def test_refresh_prices_keeps_the_prices_file_on_top(
    tmp_path: Path, isolated_env: Path, into_other_folder: bool
) -> None:
    from cometnb._client.lookups import refresh_prices

    body = (SHARED_FIXTURES / "api-models.json").read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    override = _write(tmp_path / "mine.json", {"models": {"gpt-image-2": {"image_out": 11}}})
    _settings.active().prices_file = str(override)
    folder = tmp_path / "elsewhere" if into_other_folder else None
    table = refresh_prices("http://127.0.0.1:9/v1", folder, transport=httpx.MockTransport(answer))
    gpt2 = table.get("gpt-image-2")
    assert gpt2 is not None and gpt2.image_out == 11.0  # the user's file wins over the catalog
    assert table.get("qwen-image") is not None  # and the catalog is in it


def test_refresh_prices_failure_leaves_prices_alone(isolated_env: Path) -> None:
    from cometnb._client.lookups import refresh_prices
    from cometnb._core.errors import APIError

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=b"busy")

    with pytest.raises(APIError, match="HTTP 503"):
        refresh_prices("http://127.0.0.1:9/v1", transport=httpx.MockTransport(answer))
    assert not (isolated_env / "prices").exists()
    assert active_table() is builtin_table()


def test_refresh_prices_says_when_it_cannot_keep_the_catalog(tmp_path: Path) -> None:
    from cometnb._client.lookups import refresh_prices
    from cometnb._core.errors import CometError

    blocked = tmp_path / "history"
    blocked.write_text("a file where the history folder should be")
    body = (SHARED_FIXTURES / "api-models.json").read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with pytest.raises(CometError, match="could not keep the price catalog") as info:
        refresh_prices("http://127.0.0.1:9/v1", blocked, transport=httpx.MockTransport(answer))
    assert "CometImg.history_dir" in str(info.value)


def test_catalog_zero_prices_are_not_read_and_never_make_a_free_model() -> None:
    base = builtin_table()
    catalog = {
        "data": [
            {"id": "dall-e-3", "pricing": {"input": 0, "output": 0, "per_request": 0.04}},
            {"id": "gpt-image-2", "pricing": {"input": 0, "output": 0}},
            {"id": "flux-2-pro", "pricing": {"input": 0, "output": "0", "per_request": 0}},
            {"id": "gpt-image-1", "pricing": {"input": 0, "output": 40}},
        ]
    }
    table = base.merged(table_from_catalog(catalog, base, source="test"))
    dalle = estimate_body({"model": "dall-e-3", "prompt": PROMPT}, table)
    assert dalle.usd == pytest.approx(0.04)  # per_request wins over output 0
    body = {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024", "quality": "low"}
    assert estimate_body(body, table).usd == estimate_body(body, base).usd  # built-in holds
    assert estimate_body({"model": "flux-2-pro", "prompt": PROMPT}, table).usd is None
    one = table.get("gpt-image-1")
    assert one is not None and one.text_in == base.get("gpt-image-1").text_in  # type: ignore[union-attr]
    assert one.image_out == 40.0
    text = " | ".join(table.problems)
    assert "gpt-image-2: input, output of 0 is not a price" in text
    assert "flux-2-pro: input, output, per_request of 0 is not a price" in text
    assert all(e.usd != 0 for e in (dalle, estimate_body(body, table)))


def test_catalog_duplicates_are_reported_and_the_first_kept() -> None:
    base = builtin_table()
    catalog = {
        "data": [
            {"id": "gpt-image-2", "pricing": {"input": 5, "output": 24}},
            {"id": "gpt-image-2", "pricing": {"input": 5, "output": 99}},
        ]
    }
    table = table_from_catalog(catalog, base, source="test")
    assert table.get("gpt-image-2").image_out == 24.0  # type: ignore[union-attr]
    assert table.problems == ("gpt-image-2: listed more than once; the first entry is used",)
