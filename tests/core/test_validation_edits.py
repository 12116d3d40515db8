"""Edit capabilities: each rule of API_FACTS §7 refuses with a message naming it and the sizes."""

from __future__ import annotations

import pytest
from _history_helpers import image_bytes

from cometnb._core.edit_inputs import ImageInput, mask, resolve_source
from cometnb._core.errors import ValidationError
from cometnb._core.model_registry import (
    EDIT_CAPABILITIES,
    edit_route,
    get_edit_caps,
    takes_fidelity,
)
from cometnb._core.validation import validate_edit


def _img(w: int = 64, h: int = 64, fmt: str = "PNG", label: str = "photo") -> ImageInput:
    return resolve_source(image_bytes(w, h, fmt), label=label)


def _refused(model: str, images: list[ImageInput], m: ImageInput | None = None, **fields: object):
    with pytest.raises(ValidationError) as info:
        validate_edit(model, images, m, fields)
    return info.value


def test_the_table_follows_the_fact_sheet() -> None:
    gpt = get_edit_caps("gpt-image-2")
    assert gpt is not None and (gpt.max_images, gpt.route, gpt.fidelity) == (16, "multipart", False)
    assert takes_fidelity("gpt-image-1") and takes_fidelity("gpt-image-1.5")
    assert not takes_fidelity("gpt-image-1-mini") and not takes_fidelity("gpt-image-2")
    assert edit_route("doubao-seedream-4-0-250828") == "json"
    assert EDIT_CAPABILITIES["doubao-seedream-4-5-251128"].max_images == 14
    assert edit_route("some-new-model") == "multipart"


def test_what_passes() -> None:
    one = _img()
    validate_edit("gpt-image-2", [one] * 16, resolve_source(mask((64, 64), box=(0, 0, 8, 8))), {})
    validate_edit("gpt-image-1", [one], None, {"input_fidelity": "high"})
    validate_edit("dall-e-2", [one], None, {})
    validate_edit("doubao-seedream-4-0-250828", [one] * 14, None, {})
    validate_edit("unknown-model", [_img(fmt="GIF")], None, {})  # generic checks only
    validate_edit("gpt-image-2", [], None, {})  # a plain generation


def test_too_many_images() -> None:
    err = _refused("gpt-image-2", [_img()] * 17)
    assert err.message == "gpt-image-2 takes at most 16 input images; got 17"
    assert err.field == "image"
    assert "takes one input image; got 2" in _refused("dall-e-2", [_img()] * 2).message
    seedream = _refused("doubao-seedream-4-0-250828", [_img()] * 15)
    assert "at most 14 input images; got 15" in seedream.message


def test_formats_squares_and_models_that_cannot_edit() -> None:
    err = _refused("gpt-image-2", [_img(), _img(fmt="GIF", label="anim.gif")])
    assert err.message == (
        "gpt-image-2 takes PNG, WEBP or JPEG input images; image 2 (anim.gif) is GIF"
    )
    assert "dall-e-2 takes PNG input images; image 1 (photo) is JPEG" in (
        _refused("dall-e-2", [_img(fmt="JPEG")]).message
    )
    assert "dall-e-2 needs a square PNG; image 1 (photo) is 64x32" in (
        _refused("dall-e-2", [_img(64, 32)]).message
    )
    err = _refused("dall-e-3", [_img()])
    assert err.message.startswith("dall-e-3 cannot take input images; models that can: gpt-image-2")


def test_byte_limits() -> None:
    big = ImageInput(b"x" * (4 * 1024 * 1024), "big.png", "png", 64, 64, False, "big.png")
    assert (
        "dall-e-2 takes input images under 4 MB; image 1 (big.png) is 4.0 MB (4,194,304 bytes)"
        in (_refused("dall-e-2", [big]).message)
    )


def test_mask_rules_name_the_rule_and_the_sizes() -> None:
    first = _img(64, 64)
    no_alpha = resolve_source(image_bytes(64, 64, "PNG"), label="flat.png")
    err = _refused("gpt-image-2", [first], no_alpha)
    assert err.field == "mask" and "must have an alpha channel" in err.message
    assert "cometnb.mask(image, box=...)" in err.message
    small = resolve_source(mask((32, 32), box=(0, 0, 8, 8)), label="small.png")
    assert _refused("gpt-image-2", [first], small).message == (
        "the mask (small.png) must be the same size as the first image (64x64); it is 32x32"
    )
    jpeg = resolve_source(image_bytes(64, 64, "JPEG"), label="m.jpg")
    assert (
        "the mask (m.jpg) must be a PNG; it is JPEG"
        in _refused("gpt-image-2", [first], jpeg).message
    )
    heavy = ImageInput(b"x" * (4 * 1024 * 1024), "m.png", "png", 64, 64, True, "m.png")
    assert (
        "must be under 4 MB; it is 4.0 MB (4,194,304 bytes)"
        in _refused("gpt-image-1", [first], heavy).message
    )
    assert "takes no mask" in _refused("doubao-seedream-4-0-250828", [first], small).message


def test_fidelity_per_model() -> None:
    err = _refused("gpt-image-2", [_img()], input_fidelity="high")
    assert err.message == (
        "input_fidelity applies to gpt-image-1 and gpt-image-1.5 only; gpt-image-2 does not "
        "accept it"
    )
    assert err.field == "input_fidelity"
    assert "must be high or low; got 'max'" in (
        _refused("gpt-image-1.5", [_img()], input_fidelity="max").message
    )
    assert "applies to edits" in _refused("gpt-image-1", [], input_fidelity="low").message
    assert "a mask needs an input image" in _refused("gpt-image-1", [], _img()).message


def test_an_edit_estimate_counts_its_input_images() -> None:
    from cometnb._core.generations import ImageRequest
    from cometnb._core.prices import estimate_body

    plain = ImageRequest("a fox", "gpt-image-1", size="1024x1024", quality="low")
    edit = plain.with_overrides(images=[_img(), _img()])
    high = edit.with_overrides(input_fidelity="high")
    costs = [r.estimate().usd for r in (plain, edit, high)]
    assert all(c is not None for c in costs)
    assert costs[0] < costs[1] < costs[2]  # type: ignore[operator]
    # The body the history prices a failure with (an EditBody) counts them too.
    assert estimate_body(edit.to_body()).usd == costs[1]
