"""Every rule of the capability table, with the exact message a user sees."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cometnb._core.errors import CometError, ValidationError, register_secret
from cometnb._core.model_registry import (
    CAPABILITIES,
    KNOWN_MODELS,
    OPTIONAL_FIELDS,
    FlexibleSize,
    get_caps,
)
from cometnb._core.validation import validate_request

GPT_FIXED = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
GPT_ALL = ("gpt-image-2", *GPT_FIXED)
DALL_E = ("dall-e-2", "dall-e-3")
ALIASES = (
    "gpt-image-2-2026-04-21",
    "chatgpt-image-latest",
    "gpt-image-2.5-flare-2026-09-08",
    "gpt-image-2.5-sunburst-2026-09-08",
)
UNKNOWN = "brand-new-model-9"
SEEDREAM = (
    "doubao-seedream-4-0-250828",
    "doubao-seedream-4-5-251128",
    "doubao-seedream-5-0-260128",
)
NOT_SEEDREAM = tuple(m for m in KNOWN_MODELS if m not in SEEDREAM)


def refuse(model: str, fields: dict[str, Any], prompt: Any = "a lighthouse") -> ValidationError:
    with pytest.raises(ValidationError) as info:
        validate_request(prompt, model, fields)
    return info.value


def accept(model: str, fields: dict[str, Any], prompt: Any = "a lighthouse") -> None:
    assert validate_request(prompt, model, fields) is None


# --- the table --------------------------------------------------------------------------------


def test_known_models_in_display_order() -> None:
    assert (
        "gpt-image-2",
        "gpt-image-2.6-flare",
        "gpt-image-2.6-sunburst",
        "gpt-image-2.5-flare",
        "gpt-image-2.5-sunburst",
        "gpt-image-1.5",
        "gpt-image-1",
        "gpt-image-1-mini",
        "dall-e-3",
        "dall-e-2",
        "qwen-image",
        *SEEDREAM,
    ) == KNOWN_MODELS


def test_table_holds_known_models_and_aliases_only() -> None:
    assert set(CAPABILITIES) == {*KNOWN_MODELS, *ALIASES}
    assert not set(ALIASES) & set(KNOWN_MODELS)
    for name, caps in CAPABILITIES.items():
        assert caps.name == name
        assert caps.fields <= set(OPTIONAL_FIELDS)
        assert caps.unverified <= caps.fields


@pytest.mark.parametrize(
    ("model", "family"),
    [
        *((m, "gpt-image") for m in (*GPT_ALL, *ALIASES)),
        *((m, "dall-e") for m in DALL_E),
        ("qwen-image", "qwen"),
    ],
)
def test_families(model: str, family: str) -> None:
    caps = get_caps(model)
    assert caps is not None and caps.family == family


def test_get_caps_unknown_is_none() -> None:
    assert get_caps(UNKNOWN) is None
    assert get_caps("GPT-IMAGE-2") is None  # model names are exact, as the API treats them


def test_caps_are_frozen() -> None:
    caps = get_caps("dall-e-3")
    assert caps is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.max_n = 5  # type: ignore[misc]


def test_table_facts_for_ui() -> None:
    d3, d2, g2, g1, qwen = (
        get_caps(m) for m in ("dall-e-3", "dall-e-2", "gpt-image-2", "gpt-image-1", "qwen-image")
    )
    assert d3 is not None and d2 is not None and g2 is not None and g1 is not None
    assert qwen is not None
    assert d3.sizes == ("1024x1024", "1792x1024", "1024x1792")
    assert d2.sizes == ("256x256", "512x512", "1024x1024")
    assert g1.sizes == ("1024x1024", "1536x1024", "1024x1536", "auto")
    assert {"1024x1024", "1536x1024", "1024x1536", "3840x2160", "auto"} <= set(g2.sizes)
    assert g2.flexible_size and not g1.flexible_size and not d3.flexible_size
    assert (d3.max_n, d2.max_n, g2.max_n, qwen.max_n) == (1, 10, 10, 1)
    assert d3.qualities == ("standard", "hd") and d2.qualities == ("standard",)
    assert g2.qualities == ("low", "medium", "high", "auto")
    assert d3.styles == ("vivid", "natural") and not g2.styles
    assert d3.response_formats == ("url", "b64_json")
    assert g2.output_formats == ("png", "jpeg", "webp")
    assert g2.backgrounds == ("transparent", "opaque", "auto")
    assert g2.moderations == ("low", "auto")
    assert (g2.max_prompt_chars, d3.max_prompt_chars, d2.max_prompt_chars) == (32_000, 4_000, 1_000)
    assert qwen.max_prompt_chars is None
    assert g2.streaming and g1.streaming and not d3.streaming and not d2.streaming


@pytest.mark.parametrize("model", list(CAPABILITIES))
def test_every_listed_size_validates(model: str) -> None:
    caps = get_caps(model)
    assert caps is not None
    for size in caps.sizes:
        accept(model, {"size": size})


# --- sizes ------------------------------------------------------------------------------------

SIZE_OK = [
    *(("dall-e-2", s) for s in ("256x256", "512x512", "1024x1024")),
    *(("dall-e-3", s) for s in ("1024x1024", "1792x1024", "1024x1792")),
    *((m, s) for m in GPT_FIXED for s in ("1024x1024", "1536x1024", "1024x1536", "auto")),
    *(
        ("gpt-image-2", s)
        for s in (
            "1024x1024",
            "1536x1024",
            "1024x1536",
            "auto",
            "1280x720",
            "3072x1024",
            "1024x3072",
            "3840x2160",
            "2160x3840",
            "816x816",
            "2880x2880",
        )
    ),
    ("gpt-image-2-2026-04-21", "1280x720"),
    ("qwen-image", "1328x1328"),
    ("qwen-image", "auto"),
    (UNKNOWN, "123x457"),
    (UNKNOWN, "auto"),
]


@pytest.mark.parametrize(("model", "size"), SIZE_OK)
def test_size_accepted(model: str, size: str) -> None:
    accept(model, {"size": size})


SIZE_BAD = [
    ("dall-e-2", "1792x1024", "dall-e-2 accepts size 256x256, 512x512 or 1024x1024; got 1792x1024"),
    ("dall-e-2", "auto", "dall-e-2 accepts size 256x256, 512x512 or 1024x1024; got auto"),
    ("dall-e-3", "512x512", "dall-e-3 accepts size 1024x1024, 1792x1024 or 1024x1792; got 512x512"),
    ("dall-e-3", "auto", "dall-e-3 accepts size 1024x1024, 1792x1024 or 1024x1792; got auto"),
    ("dall-e-3", 1024, "dall-e-3 accepts size 1024x1024, 1792x1024 or 1024x1792; got 1024"),
    *(
        (m, "1792x1024", f"{m} accepts size 1024x1024, 1536x1024, 1024x1536 or auto; got 1792x1024")
        for m in GPT_FIXED
    ),
    (
        "gpt-image-1",
        "big",
        "gpt-image-1 accepts size 1024x1024, 1536x1024, 1024x1536 or auto; got big",
    ),
    (
        "gpt-image-2",
        "1000x1000",
        "gpt-image-2 size 1000x1000: both sides must be multiples of 16"
        " (nearest valid size: 992x992)",
    ),
    (
        "gpt-image-2",
        "1024x1000",
        "gpt-image-2 size 1024x1000: both sides must be multiples of 16"
        " (nearest valid size: 1024x1008)",
    ),
    (
        "gpt-image-2",
        "3088x1024",
        "gpt-image-2 size 3088x1024: the aspect ratio must be between 1:3 and 3:1"
        " (nearest valid size: 3072x1024)",
    ),
    (
        "gpt-image-2",
        "1024x3088",
        "gpt-image-2 size 1024x3088: the aspect ratio must be between 1:3 and 3:1"
        " (nearest valid size: 1024x3072)",
    ),
    (
        "gpt-image-2",
        "3856x1296",
        "gpt-image-2 size 3856x1296: the long edge must be at most 3840 px"
        " (nearest valid size: 3808x1280)",
    ),
    (
        "gpt-image-2",
        "3840x2176",
        "gpt-image-2 size 3840x2176: it has 8,355,840 pixels; allowed are 655,360 to 8,294,400"
        " (nearest valid size: 3808x2160)",
    ),
    (
        "gpt-image-2-2026-04-21",
        "1000x1000",
        "gpt-image-2-2026-04-21 size 1000x1000: both sides must be multiples of 16"
        " (nearest valid size: 992x992)",
    ),
    ("gpt-image-2", "big", "size must be auto or WIDTHxHEIGHT such as 1024x1024; got 'big'"),
    (
        "gpt-image-2",
        "1024X1024",
        "size must be auto or WIDTHxHEIGHT such as 1024x1024; got '1024X1024'",
    ),
    ("gpt-image-2", "0x1024", "size must be auto or WIDTHxHEIGHT such as 1024x1024; got '0x1024'"),
    ("qwen-image", "large", "size must be auto or WIDTHxHEIGHT such as 1024x1024; got 'large'"),
    (UNKNOWN, "1024", "size must be auto or WIDTHxHEIGHT such as 1024x1024; got '1024'"),
    (UNKNOWN, 1024, "size must be auto or WIDTHxHEIGHT such as 1024x1024; got 1024"),
]


@pytest.mark.parametrize(("model", "size", "message"), SIZE_BAD)
def test_size_refused(model: str, size: Any, message: str) -> None:
    err = refuse(model, {"size": size})
    assert str(err) == message
    assert err.field == "size"


def test_flexible_rule_is_data() -> None:
    rule = FlexibleSize(step=8, max_aspect=2.0, max_edge=100, max_pixels=5000, min_pixels=1000)
    assert rule.problem(64, 64) is None
    assert rule.problem(12, 16) == "both sides must be multiples of 8 (nearest valid size: 32x40)"
    assert rule.problem(96, 40) == (
        "the aspect ratio must be between 1:2 and 2:1 (nearest valid size: 80x40)"
    )
    assert rule.problem(104, 104) == (
        "the long edge must be at most 100 px (nearest valid size: 64x64)"
    )
    assert rule.problem(96, 96) == (
        "it has 9,216 pixels; allowed are 1,000 to 5,000 (nearest valid size: 64x64)"
    )
    assert rule.problem(16, 16) == (
        "it has 256 pixels; allowed are 1,000 to 5,000 (nearest valid size: 32x32)"
    )


def test_gpt_image_2_refuses_sizes_below_the_pixel_minimum() -> None:
    err = refuse("gpt-image-2", {"size": "512x512"})
    assert str(err) == (
        "gpt-image-2 size 512x512: it has 262,144 pixels; allowed are 655,360 to 8,294,400"
        " (nearest valid size: 816x816)"
    )
    assert "800x800" in str(refuse("gpt-image-2", {"size": "800x800"}))


def test_unknown_models_get_a_generic_size_limit() -> None:
    err = refuse(UNKNOWN, {"size": "99999x99999"})
    assert "each side must be at most 8,192 px" in str(err) and err.field == "size"
    accept(UNKNOWN, {"size": "4096x4096"})


# --- n ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [*NOT_SEEDREAM, *ALIASES, UNKNOWN])
def test_n_one_accepted_everywhere(model: str) -> None:
    accept(model, {"n": 1})


@pytest.mark.parametrize("model", SEEDREAM)
def test_seedream_sizes_watermark_and_no_n(model: str) -> None:
    for size in ("1K", "2K", "4K", "2048x2048", "1728x2304"):
        accept(model, {"size": size, "watermark": False, "response_format": "url"})
    assert "size must be auto or WIDTHxHEIGHT" in str(refuse(model, {"size": "8K"}))
    assert str(refuse(model, {"watermark": "no"})) == "watermark must be true or false; got 'no'"
    assert "n applies to" in str(refuse(model, {"n": 2}))
    assert str(refuse("gpt-image-2", {"watermark": True})) == (
        "watermark applies to seedream models only; gpt-image-2 does not accept it"
    )


@pytest.mark.parametrize("model", [*GPT_ALL, "dall-e-2", *ALIASES, UNKNOWN])
def test_n_ten_accepted(model: str) -> None:
    accept(model, {"n": 10})


N_BAD = [
    ("qwen-image", 2, "qwen-image accepts n=1 only; got n=2"),
    ("dall-e-3", 2, "dall-e-3 accepts n=1 only; got n=2"),
    ("dall-e-3", 10, "dall-e-3 accepts n=1 only; got n=10"),
    ("gpt-image-2", 11, "n must be an integer from 1 to 10; got 11"),
    ("dall-e-2", 0, "n must be an integer from 1 to 10; got 0"),
    ("gpt-image-1", -1, "n must be an integer from 1 to 10; got -1"),
    ("gpt-image-2", "2", "n must be an integer from 1 to 10; got '2'"),
    ("gpt-image-2", True, "n must be an integer from 1 to 10; got True"),
    ("gpt-image-2", 1.0, "n must be an integer from 1 to 10; got 1.0"),
    ("qwen-image", "1", "n must be an integer from 1 to 10; got '1'"),
    (UNKNOWN, 11, "n must be an integer from 1 to 10; got 11"),
    (UNKNOWN, False, "n must be an integer from 1 to 10; got False"),
]


@pytest.mark.parametrize(("model", "n", "message"), N_BAD)
def test_n_refused(model: str, n: Any, message: str) -> None:
    err = refuse(model, {"n": n})
    assert str(err) == message
    assert err.field == "n"


# --- quality, style, enumerated fields --------------------------------------------------------

CHOICE_OK = [
    ("dall-e-2", "quality", "standard"),
    *(("dall-e-3", "quality", q) for q in ("standard", "hd")),
    *((m, "quality", q) for m in (*GPT_ALL, *ALIASES) for q in ("low", "medium", "high", "auto")),
    *(("dall-e-3", "style", s) for s in ("vivid", "natural")),
    *((m, "response_format", r) for m in DALL_E for r in ("url", "b64_json")),
    *((m, "output_format", f) for m in GPT_ALL for f in ("png", "jpeg", "webp")),
    *((m, "background", b) for m in GPT_ALL for b in ("transparent", "opaque", "auto")),
    *((m, "moderation", v) for m in GPT_ALL for v in ("low", "auto")),
]


@pytest.mark.parametrize(("model", "name", "value"), CHOICE_OK)
def test_choice_accepted(model: str, name: str, value: str) -> None:
    accept(model, {name: value})


CHOICE_BAD = [
    ("dall-e-2", "quality", "hd", "dall-e-2 accepts quality standard only; got hd"),
    ("dall-e-3", "quality", "high", "dall-e-3 accepts quality standard or hd; got high"),
    *(
        (m, "quality", "hd", f"{m} accepts quality low, medium, high or auto; got hd")
        for m in GPT_ALL
    ),
    (
        "gpt-image-2",
        "quality",
        "standard",
        "gpt-image-2 accepts quality low, medium, high or auto; got standard",
    ),
    ("gpt-image-2", "quality", 5, "gpt-image-2 accepts quality low, medium, high or auto; got 5"),
    ("gpt-image-2", "quality", "", "gpt-image-2 accepts quality low, medium, high or auto; got ''"),
    ("dall-e-3", "style", "bold", "dall-e-3 accepts style vivid or natural; got bold"),
    (
        "dall-e-3",
        "response_format",
        "png",
        "dall-e-3 accepts response_format url or b64_json; got png",
    ),
    (
        "gpt-image-1",
        "output_format",
        "gif",
        "gpt-image-1 accepts output_format png, jpeg or webp; got gif",
    ),
    (
        "gpt-image-2",
        "background",
        "white",
        "gpt-image-2 accepts background transparent, opaque or auto; got white",
    ),
    (
        "gpt-image-1-mini",
        "moderation",
        "high",
        "gpt-image-1-mini accepts moderation low or auto; got high",
    ),
]


@pytest.mark.parametrize(("model", "name", "value", "message"), CHOICE_BAD)
def test_choice_refused(model: str, name: str, value: Any, message: str) -> None:
    err = refuse(model, {name: value})
    assert str(err) == message
    assert err.field == name


# --- which fields apply -----------------------------------------------------------------------

GPT_ONLY = {
    "output_format": "png",
    "output_compression": 50,
    "background": "opaque",
    "moderation": "low",
    "stream": True,
    "partial_images": 1,
}

NOT_APPLICABLE = [
    *(
        (m, name, value, f"{name} applies to gpt-image models only; {m} does not accept it")
        for m in DALL_E
        for name, value in GPT_ONLY.items()
    ),
    *(
        (
            m,
            "response_format",
            "b64_json",
            f"response_format applies to dall-e models and seedream models only; {m} does not "
            "accept it",
        )
        for m in (*GPT_ALL, *ALIASES)
    ),
    *(
        (m, "style", "vivid", f"style applies to dall-e-3 only; {m} does not accept it")
        for m in (*GPT_ALL, "dall-e-2", *ALIASES)
    ),
]


@pytest.mark.parametrize(("model", "name", "value", "message"), NOT_APPLICABLE)
def test_field_does_not_apply(model: str, name: str, value: Any, message: str) -> None:
    err = refuse(model, {name: value})
    assert str(err) == message
    assert err.field == name


def test_stream_false_still_does_not_apply_to_dall_e() -> None:
    # Sending a GPT-only field at all is refused, whatever its value.
    assert refuse("dall-e-3", {"stream": False}).field == "stream"


@pytest.mark.parametrize("model", [*CAPABILITIES, UNKNOWN])
def test_user_accepted_by_every_model(model: str) -> None:
    accept(model, {"user": "analyst-42"})


def test_user_must_be_a_string_for_known_models() -> None:
    err = refuse("dall-e-2", {"user": 42})
    assert (str(err), err.field) == ("user must be a string; got 42", "user")


def test_none_values_are_ignored() -> None:
    accept("gpt-image-2", {"style": None, "response_format": None, "n": None})
    accept("dall-e-3", {"output_format": None, "stream": None})


# --- cross-field rules ------------------------------------------------------------------------

CROSS_OK = [
    {"background": "transparent"},  # png is the default output_format
    {"background": "transparent", "output_format": "png"},
    {"background": "transparent", "output_format": "webp"},
    {"background": "opaque", "output_format": "jpeg"},
    {"output_compression": 0, "output_format": "jpeg"},
    {"output_compression": 100, "output_format": "webp"},
    {"partial_images": 0, "stream": True},
    {"partial_images": 3, "stream": True},
    {"stream": True},
    {"stream": False},
]


@pytest.mark.parametrize("model", GPT_ALL)
@pytest.mark.parametrize("fields", CROSS_OK)
def test_cross_field_accepted(model: str, fields: dict[str, Any]) -> None:
    accept(model, fields)


CROSS_BAD = [
    (
        {"background": "transparent", "output_format": "jpeg"},
        "background",
        "background=transparent needs output_format png or webp; got output_format=jpeg",
    ),
    (
        {"output_compression": 80},
        "output_compression",
        "output_compression needs output_format jpeg or webp; got output_format=png (the default)",
    ),
    (
        {"output_compression": 80, "output_format": "png"},
        "output_compression",
        "output_compression needs output_format jpeg or webp; got output_format=png",
    ),
    (
        {"partial_images": 2},
        "partial_images",
        "partial_images needs stream=true; got stream=false (the default)",
    ),
    (
        {"partial_images": 2, "stream": False},
        "partial_images",
        "partial_images needs stream=true; got stream=false",
    ),
    (
        {"output_compression": 101, "output_format": "jpeg"},
        "output_compression",
        "output_compression must be an integer from 0 to 100; got 101",
    ),
    (
        {"output_compression": "80", "output_format": "jpeg"},
        "output_compression",
        "output_compression must be an integer from 0 to 100; got '80'",
    ),
    (
        {"partial_images": 4, "stream": True},
        "partial_images",
        "partial_images must be an integer from 0 to 3; got 4",
    ),
    (
        {"partial_images": -1, "stream": True},
        "partial_images",
        "partial_images must be an integer from 0 to 3; got -1",
    ),
    ({"stream": "true"}, "stream", "stream must be true or false; got 'true'"),
    ({"stream": 1}, "stream", "stream must be true or false; got 1"),
]


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-1"])
@pytest.mark.parametrize(("fields", "field", "message"), CROSS_BAD)
def test_cross_field_refused(model: str, fields: dict[str, Any], field: str, message: str) -> None:
    err = refuse(model, fields)
    assert str(err) == message
    assert err.field == field


# --- prompt and model -------------------------------------------------------------------------

PROMPT_OK = [
    ("gpt-image-2", 32_000),
    ("gpt-image-1-mini", 32_000),
    ("dall-e-3", 4_000),
    ("dall-e-2", 1_000),
    ("qwen-image", 50_000),  # no verified limit
    (UNKNOWN, 50_000),
]


@pytest.mark.parametrize(("model", "length"), PROMPT_OK)
def test_prompt_length_accepted(model: str, length: int) -> None:
    accept(model, {}, prompt="x" * length)


PROMPT_TOO_LONG = [
    (
        "gpt-image-2",
        32_001,
        "gpt-image-2 accepts a prompt of at most 32,000 characters; got 32,001",
    ),
    (
        "gpt-image-1.5",
        40_000,
        "gpt-image-1.5 accepts a prompt of at most 32,000 characters; got 40,000",
    ),
    ("dall-e-3", 4_001, "dall-e-3 accepts a prompt of at most 4,000 characters; got 4,001"),
    ("dall-e-2", 1_001, "dall-e-2 accepts a prompt of at most 1,000 characters; got 1,001"),
]


@pytest.mark.parametrize(("model", "length", "message"), PROMPT_TOO_LONG)
def test_prompt_too_long(model: str, length: int, message: str) -> None:
    err = refuse(model, {}, prompt="x" * length)
    assert (str(err), err.field) == (message, "prompt")


@pytest.mark.parametrize(
    ("prompt", "shown"),
    [("", "''"), ("   \n", "'   \\n'"), (None, "None"), (5, "5"), (["a"], "['a']")],
)
@pytest.mark.parametrize("model", ["gpt-image-2", "dall-e-3", "qwen-image", UNKNOWN])
def test_prompt_must_be_non_empty_string(model: str, prompt: Any, shown: str) -> None:
    err = refuse(model, {}, prompt=prompt)
    assert str(err) == f"prompt must be a non-empty string; got {shown}"
    assert err.field == "prompt"


@pytest.mark.parametrize(("model", "shown"), [("", "''"), (None, "None"), (3, "3")])
def test_model_must_be_non_empty_string(model: Any, shown: str) -> None:
    err = refuse(model, {})
    assert (str(err), err.field) == (f"model must be a non-empty string; got {shown}", "model")


# --- qwen-image: only n is verified -----------------------------------------------------------


def test_qwen_accepts_everything_unverified() -> None:
    accept(
        "qwen-image",
        {
            "size": "1328x1328",
            "quality": "hd",
            "style": "vivid",
            "response_format": "url",
            "output_format": "jpeg",
            "background": "transparent",
            "output_compression": 50,
            "moderation": "whatever",
            "stream": True,
            "partial_images": 2,
        },
    )
    accept("qwen-image", {"partial_images": 2})  # no stream rule: unverified


def test_qwen_still_gets_generic_checks() -> None:
    assert str(refuse("qwen-image", {"partial_images": 9})) == (
        "partial_images must be an integer from 0 to 3; got 9"
    )
    assert refuse("qwen-image", {"seed": {1, 2}}).field == "seed"


# --- aliases ----------------------------------------------------------------------------------


def test_dated_gpt_image_2_alias_has_gpt_image_2_rules() -> None:
    alias, base = get_caps("gpt-image-2-2026-04-21"), get_caps("gpt-image-2")
    assert alias is not None and base is not None
    assert dataclasses.replace(alias, name=base.name) == base
    assert str(refuse("gpt-image-2-2026-04-21", {"quality": "hd"})) == (
        "gpt-image-2-2026-04-21 accepts quality low, medium, high or auto; got hd"
    )


def test_chatgpt_image_latest_is_gpt_image_with_unverified_size() -> None:
    accept("chatgpt-image-latest", {"size": "2048x1152", "background": "transparent"})
    accept("chatgpt-image-latest", {"size": "1000x1000"})  # which model it is: unverified
    assert refuse("chatgpt-image-latest", {"size": "big"}).field == "size"
    err = refuse("chatgpt-image-latest", {"output_format": "jpeg", "background": "transparent"})
    assert err.field == "background"
    assert str(refuse("chatgpt-image-latest", {"n": 11})) == (
        "n must be an integer from 1 to 10; got 11"
    )


# --- unknown models ---------------------------------------------------------------------------


def test_unknown_model_passes_fields_through() -> None:
    accept(
        UNKNOWN,
        {
            "n": 4,
            "size": "777x333",
            "quality": "ultra",
            "style": "anything",
            "response_format": "url",
            "output_format": "avif",
            "background": "transparent",
            "output_compression": 10,  # no output_format rule for unknown models
            "partial_images": 2,  # nor a stream rule
            "user": 42,  # nor a user type rule
            "seed": 7,
            "extra": {"nested": [1, 2.5, None, True]},
        },
    )


GENERIC_BAD = [
    ({"n": 0}, "n", "n must be an integer from 1 to 10; got 0"),
    ({"n": "3"}, "n", "n must be an integer from 1 to 10; got '3'"),
    ({"size": "huge"}, "size", "size must be auto or WIDTHxHEIGHT such as 1024x1024; got 'huge'"),
    (
        {"output_compression": 150},
        "output_compression",
        "output_compression must be an integer from 0 to 100; got 150",
    ),
    (
        {"partial_images": 5},
        "partial_images",
        "partial_images must be an integer from 0 to 3; got 5",
    ),
    ({"stream": "yes"}, "stream", "stream must be true or false; got 'yes'"),
    (
        {"seed": float("nan")},
        "seed",
        "seed must be a JSON value (string, number, bool, list or dict); got nan",
    ),
    (
        {"blob": b"\x00"},
        "blob",
        "blob must be a JSON value (string, number, bool, list or dict); got b'\\x00'",
    ),
    (
        {"tags": {"a"}},
        "tags",
        "tags must be a JSON value (string, number, bool, list or dict); got {'a'}",
    ),
]


@pytest.mark.parametrize(("fields", "field", "message"), GENERIC_BAD)
@pytest.mark.parametrize("model", [UNKNOWN, "another/model"])
def test_unknown_model_generic_checks(
    model: str, fields: dict[str, Any], field: str, message: str
) -> None:
    err = refuse(model, fields)
    assert (str(err), err.field) == (message, field)


def test_extra_fields_pass_for_known_models_if_json() -> None:
    accept("gpt-image-2", {"seed": 5, "metadata": {"k": "v"}})
    err = refuse("dall-e-3", {"callback": object()})
    assert err.field == "callback"
    assert str(err).startswith("callback must be a JSON value")


def test_a_key_typed_into_a_field_never_shows(fake_key: str) -> None:
    register_secret(fake_key)
    for fields in ({"style": fake_key}, {"size": "x" * 40 + fake_key}, {"n": fake_key}):
        message = str(refuse("dall-e-3", fields))
        assert fake_key[:12] not in message
    assert "[REDACTED]" in str(refuse("dall-e-3", {"style": fake_key}))


def test_long_values_are_clipped_in_messages() -> None:
    err = refuse("dall-e-3", {"style": "v" * 500})
    assert len(str(err)) < 150
    assert str(err).endswith("…")


# --- several problems: the first is reported ---------------------------------------------------


@pytest.mark.parametrize(
    ("model", "prompt", "fields", "field"),
    [
        ("dall-e-3", "", {"n": 2, "style": "bold"}, "prompt"),
        ("dall-e-3", "ok", {"style": "bold", "n": 2}, "n"),
        ("dall-e-3", "ok", {"quality": "ultra", "size": "1x1"}, "size"),
        ("gpt-image-2", "ok", {"partial_images": 2, "style": "vivid"}, "style"),
        (
            "gpt-image-2",
            "ok",
            {"background": "transparent", "output_format": "gif"},
            "output_format",
        ),
        ("gpt-image-2", "ok", {"seed": object(), "quality": "hd"}, "quality"),
    ],
)
def test_first_problem_is_reported(
    model: str, prompt: str, fields: dict[str, Any], field: str
) -> None:
    assert refuse(model, fields, prompt=prompt).field == field


def test_validation_error_is_a_value_error_and_comet_error() -> None:
    err = refuse("qwen-image", {"n": 2})
    assert isinstance(err, ValueError) and isinstance(err, CometError)
    assert repr(err) == "ValidationError('qwen-image accepts n=1 only; got n=2')"


def test_fields_mapping_is_not_modified() -> None:
    fields: dict[str, Any] = {"n": 1, "style": None}
    validate_request("ok", "gpt-image-2", fields)
    assert fields == {"n": 1, "style": None}
