"""ImageRequest (validate before I/O) and the plain result types of ``_models``."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from PIL import Image

from cometnb._core.errors import APIError, ValidationError
from cometnb._core.generations import (
    ClientEvent,
    GeneratedImage,
    Generation,
    Grid,
    GridCell,
    ImageRequest,
)
from cometnb._core.settings import DEFAULT_MODEL, Settings


def png(width: int, height: int, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def noisy_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((side, side), 60).convert("RGB").save(out, "PNG")
    return out.getvalue()


# --- ImageRequest: construction and body ------------------------------------------------------


def test_none_fields_are_dropped() -> None:
    req = ImageRequest("a cat", "gpt-image-1", size=None, quality="high", n=None)
    assert req.fields == {"quality": "high"}
    assert req.to_body() == {"model": "gpt-image-1", "prompt": "a cat", "quality": "high"}


def test_model_defaults_to_the_package_default() -> None:
    assert ImageRequest("a cat").model == DEFAULT_MODEL == "gpt-image-2"
    assert ImageRequest("a cat", None).model == DEFAULT_MODEL


def test_body_has_model_and_prompt_first_and_no_key(fake_key: str) -> None:
    req = ImageRequest("a cat", "dall-e-3", size="1024x1024", style="vivid")
    body = req.to_body()
    assert list(body)[:2] == ["model", "prompt"]
    assert body == {"model": "dall-e-3", "prompt": "a cat", "size": "1024x1024", "style": "vivid"}
    assert fake_key not in repr(body)


def test_docstring_example() -> None:
    req = ImageRequest("a lighthouse at dusk", model="dall-e-3", size="1792x1024")
    assert req.validate().to_body()["size"] == "1792x1024"


# --- ImageRequest: validation delegates to the capability table -------------------------------


def test_validate_returns_self_for_chaining() -> None:
    req = ImageRequest("a cat", "gpt-image-2", size="1280x720", n=2)
    assert req.validate() is req


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        (ImageRequest("a cat", "qwen-image", n=2), "n", "qwen-image accepts n=1 only; got n=2"),
        (
            ImageRequest("a cat", "dall-e-3", size="512x512"),
            "size",
            "dall-e-3 accepts size 1024x1024, 1792x1024 or 1024x1792; got 512x512",
        ),
        (
            ImageRequest("a cat", "gpt-image-2", style="vivid"),
            "style",
            "style applies to dall-e-3 only; gpt-image-2 does not accept it",
        ),
        (
            ImageRequest("a cat", size="1000x1000"),
            "size",
            "gpt-image-2 size 1000x1000: both sides must be multiples of 16"
            " (nearest valid size: 992x992)",
        ),
        (ImageRequest("", "dall-e-2"), "prompt", "prompt must be a non-empty string; got ''"),
        (ImageRequest("a cat", n="2"), "n", "n must be an integer from 1 to 10; got '2'"),
    ],
)
def test_validate_refuses(request_: ImageRequest, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        request_.validate()
    assert (str(info.value), info.value.field) == (message, field)


def test_validate_passes_unknown_models_through() -> None:
    req = ImageRequest("a cat", "some-future-model", size="999x333", quality="ultra", seed=3)
    assert req.validate() is req


def test_dropped_none_fields_are_not_validated() -> None:
    # The magic and panel pass every option; None means "not given", never "style=None".
    ImageRequest("a cat", "gpt-image-2", style=None, response_format=None).validate()


# --- ImageRequest: from_dict, with_overrides --------------------------------------------------


def test_from_dict_round_trip() -> None:
    req = ImageRequest("a cat", "gpt-image-1", output_format="webp", output_compression=70)
    again = ImageRequest.from_dict(req.to_body())
    assert again == req
    assert again.fields == {"output_format": "webp", "output_compression": 70}


def test_from_dict_defaults_model_and_drops_none() -> None:
    req = ImageRequest.from_dict({"prompt": "a cat", "size": None, "quality": "low"})
    assert (req.model, req.fields) == (DEFAULT_MODEL, {"quality": "low"})


def test_from_dict_needs_a_prompt() -> None:
    with pytest.raises(ValidationError) as info:
        ImageRequest.from_dict({"model": "dall-e-3", "size": "1024x1024"})
    assert (str(info.value), info.value.field) == ("request has no 'prompt'", "prompt")


def test_with_overrides_replaces_adds_and_removes() -> None:
    base = ImageRequest("a cat", "gpt-image-1", size="1024x1024", quality="low")
    changed = base.with_overrides(quality="high", n=2, size=None)
    assert changed.to_body() == {
        "model": "gpt-image-1",
        "prompt": "a cat",
        "quality": "high",
        "n": 2,
    }
    assert base.fields == {"size": "1024x1024", "quality": "low"}  # the original is untouched
    other = base.with_overrides(model="dall-e-3", prompt="a dog", quality=None)
    assert (other.model, other.prompt, other.fields) == ("dall-e-3", "a dog", {"size": "1024x1024"})


def test_with_overrides_result_is_validated_like_any_request() -> None:
    base = ImageRequest("a cat", "gpt-image-1", quality="low")
    with pytest.raises(ValidationError, match="dall-e-3 accepts quality standard or hd; got low"):
        base.with_overrides(model="dall-e-3").validate()


def test_session_defaults_fill_only_what_the_model_takes_and_the_request_lacks() -> None:
    defaults = Settings(size="1536x1024", quality="high")
    mini = ImageRequest("a cat", "gpt-image-1-mini").with_session_defaults(defaults)
    assert mini.fields == {"size": "1536x1024", "quality": "high"}
    dalle = ImageRequest("a cat", "dall-e-3").with_session_defaults(defaults)
    assert dalle.fields == {}  # dall-e-3 takes neither value: both skipped, nothing blamed
    named = ImageRequest("a cat", "gpt-image-1-mini", size="auto").with_session_defaults(defaults)
    assert named.fields == {"size": "auto", "quality": "high"}  # the request's own value wins
    plain = ImageRequest("a cat", "gpt-image-1-mini")
    assert plain.with_session_defaults(Settings()) is plain  # no defaults: the same request


@pytest.mark.parametrize(
    ("fields", "expected"), [({}, False), ({"stream": False}, False), ({"stream": True}, True)]
)
def test_streaming(fields: dict[str, bool], expected: bool) -> None:
    assert ImageRequest("a cat", **fields).streaming is expected


# --- ImageRequest: identity and repr ----------------------------------------------------------


def test_equality_and_hash() -> None:
    a = ImageRequest("a cat", "dall-e-3", size="1024x1024")
    b = ImageRequest("a cat", "dall-e-3", size="1024x1024", style=None)
    c = ImageRequest("a cat", "dall-e-3", size="1792x1024")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert a != a.to_body()
    assert len({a, b, c}) == 2


def test_repr_shows_fields() -> None:
    req = ImageRequest("a cat", "dall-e-3", size="1024x1024")
    assert repr(req) == "ImageRequest('a cat', model='dall-e-3', size='1024x1024')"


def test_slots_refuse_typos() -> None:
    req = ImageRequest("a cat")
    with pytest.raises(AttributeError):
        req.sise = "1024x1024"  # type: ignore[attr-defined]


# --- the result types -------------------------------------------------------------------------


def test_client_event_is_frozen() -> None:
    event = ClientEvent("waiting", attempt=2, wait_s=1.5, reason="HTTP 429")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.attempt = 3  # type: ignore[misc]


def test_generated_image_in_memory() -> None:
    data = png(40, 30)
    img = GeneratedImage(None, "png", 40, 30, data=data)
    assert img.data == data
    assert img.pil().size == (40, 30)
    assert repr(img) == "<GeneratedImage png 40x30 in memory>"


def test_generated_image_reads_from_disk_each_time(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png(20, 20))
    img = GeneratedImage(path, "png", 20, 20, revised_prompt="a red square")
    assert img.data == path.read_bytes()
    path.write_bytes(png(20, 20, (0, 0, 255)))
    assert img.pil().getpixel((0, 0)) == (0, 0, 255)  # not cached
    assert repr(img) == f"<GeneratedImage png 20x20 {path}>"


def test_generated_image_without_bytes_or_file() -> None:
    with pytest.raises(FileNotFoundError):
        _ = GeneratedImage(None, "png", 1, 1).data


def test_preview_is_computed_and_bounded() -> None:
    img = GeneratedImage(None, "png", 600, 600, data=noisy_png(600))
    preview, mime = img.preview(128)
    assert mime == "image/webp"  # what every supported front end shows, at ~60% of the bytes
    assert Image.open(io.BytesIO(preview)).size == (128, 128)


def test_preview_uses_the_stored_preview_when_it_is_big_enough(tmp_path: Path) -> None:
    cached = tmp_path / "p.jpg"
    Image.new("RGB", (256, 256), "green").save(cached, "JPEG")
    # No original bytes at all: every answer below must come from the stored preview.
    img = GeneratedImage(None, "png", 800, 800, preview_path=cached)
    assert img.preview(256) == (cached.read_bytes(), "image/jpeg")
    smaller, _ = img.preview(64)  # scaled down from the stored preview, not the original
    assert Image.open(io.BytesIO(smaller)).size == (64, 64)


def test_a_stored_preview_smaller_than_asked_is_made_anew_from_the_original(
    tmp_path: Path,
) -> None:
    cached = tmp_path / "p.jpg"
    Image.new("RGB", (100, 100), "green").save(cached, "JPEG")
    img = GeneratedImage(None, "png", 800, 800, data=noisy_png(800), preview_path=cached)
    fresh, _ = img.preview(256)
    assert Image.open(io.BytesIO(fresh)).size == (256, 256)
    # The original is no bigger than the stored preview: the stored one is all there is.
    small = GeneratedImage(None, "png", 100, 100, preview_path=cached)
    assert small.preview(256) == (cached.read_bytes(), "image/jpeg")


def test_a_damaged_stored_preview_falls_back_to_the_original(tmp_path: Path) -> None:
    cached = tmp_path / "p.jpg"
    cached.write_bytes(b"\xff\xd8 not really a jpeg")
    img = GeneratedImage(None, "png", 600, 600, data=noisy_png(600), preview_path=cached)
    preview, _ = img.preview(128)
    assert Image.open(io.BytesIO(preview)).size == (128, 128)


def test_preview_default_size_comes_from_settings() -> None:
    img = GeneratedImage(None, "png", 1024, 1024, data=noisy_png(1024))
    preview, _ = img.preview()
    assert Image.open(io.BytesIO(preview)).size == (512, 512)


def test_generation_ok_and_image() -> None:
    image = GeneratedImage(None, "png", 8, 8, data=png(8, 8))
    gen = Generation({"model": "dall-e-3", "prompt": "a cat"}, [image], elapsed_s=1.25)
    assert gen.ok and gen.image is image and gen.raise_for_error() is gen
    assert (gen.model, gen.prompt) == ("dall-e-3", "a cat")
    assert repr(gen) == "<Generation dall-e-3 1 image(s) in 1.2s record=None>"


def test_failed_generation() -> None:
    err = APIError("server said no", status=500)
    gen = Generation({"model": "gpt-image-2", "prompt": "x"}, error=err, status="error")
    assert not gen.ok
    with pytest.raises(IndexError, match="no images: server said no"):
        _ = gen.image
    with pytest.raises(APIError):
        gen.raise_for_error()
    assert "error: server said no" in repr(gen)


def test_grid_layout() -> None:
    cells = [
        GridCell({"size": s, "quality": q}, ImageRequest("a cat", size=s, quality=q))
        for s in ("1024x1024", "1536x1024")
        for q in ("low", "high")
    ]
    grid = Grid({"size": ["1024x1024", "1536x1024"], "quality": ["low", "high"]}, cells)
    assert (grid.shape, len(grid)) == ((2, 2), 4)
    done = Generation(cells[1].request.to_body())
    cells[1].generation = done
    assert grid[0] is None and grid[1] is done
    assert list(grid) == [done] == grid.generations
    assert grid.cell(size="1024x1024", quality="high") is cells[1]
    with pytest.raises(KeyError):
        grid.cell(size="256x256")
    assert repr(grid) == "<Grid 2x2 1/4 done, 0 failed>"
