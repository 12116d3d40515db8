"""Edit sources: every form resolves to bytes + filename + content type; bad ones name the source.
And ``cometnb.mask``: the right size, alpha 0 inside the boxes, refusals for bad boxes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from _history_helpers import api_result, image_bytes
from PIL import Image

from cometnb._core.edit_inputs import EditBody, mask, resolve_source, resolve_sources
from cometnb._core.errors import ValidationError
from cometnb._core.generations import GeneratedImage, Generation
from cometnb.history import History


def _png(w: int = 64, h: int = 48, color: tuple[int, ...] = (10, 200, 30)) -> bytes:
    return image_bytes(w, h, "PNG", color)


@pytest.fixture
def filled(tmp_path: Path) -> History:
    h = History(tmp_path / "h")
    h.record_success(
        {"prompt": "a red fox", "model": "gpt-image-2"},
        api_result(_png(64, 64), image_bytes(32, 32, "JPEG")),
        elapsed_s=0.1,
    )
    h.record_success(
        {"prompt": "an owl", "model": "gpt-image-2"}, api_result(_png(80, 40)), elapsed_s=0.1
    )
    return h


def test_bytes_pil_and_path_resolve_with_name_and_type(tmp_path: Path) -> None:
    data = image_bytes(30, 20, "JPEG")
    src = resolve_source(data)
    assert (src.format, src.content_type, src.filename) == ("jpeg", "image/jpeg", "image.jpg")
    assert (src.width, src.height, src.has_alpha, src.record_id) == (30, 20, False, None)

    pil = Image.new("RGBA", (12, 10), (1, 2, 3, 0))
    from_pil = resolve_source(pil)
    assert (from_pil.format, from_pil.width, from_pil.has_alpha) == ("png", 12, True)

    path = tmp_path / "My Photo.webp"
    path.write_bytes(image_bytes(16, 16, "WEBP"))
    for form in (path, str(path)):
        found = resolve_source(form)
        assert (found.filename, found.content_type) == ("My-Photo.webp", "image/webp")
        assert found.label == str(path)


def test_history_references(filled: History) -> None:
    first, second = filled[0], filled[1]
    assert resolve_source("@-1", history=filled).record_id == second.id
    at_id = resolve_source(f"@{first.id}", history=filled)
    assert (at_id.record_id, at_id.index, at_id.format) == (first.id, 0, "png")
    k1 = resolve_source(f"@{first.id}:1", history=filled)
    assert (k1.index, k1.format, k1.width) == (1, "jpeg", 32)
    assert resolve_source("@-2:1", history=filled).data == first.images[1].data


def test_values_from_the_history_keep_their_record(filled: History) -> None:
    rec = filled[0]
    assert resolve_source(rec).record_id == rec.id
    gen = rec.to_generation()
    assert resolve_source(gen).record_id == rec.id
    # A GeneratedImage alone: its stored file name says which record it belongs to.
    img = rec.images[1]
    found = resolve_source(img)
    assert (found.record_id, found.index) == (rec.id, 1)
    loose = GeneratedImage(None, "png", 64, 48, data=_png())
    assert resolve_source(loose).record_id is None


def test_variables_from_a_namespace(filled: History) -> None:
    pil = Image.new("RGB", (20, 20), (9, 9, 9))
    ns = {"photo": pil, "gen": filled[0].to_generation(), "raw": _png()}
    assert resolve_source("{photo}", namespace=ns).width == 20
    assert resolve_source("{gen}", namespace=ns, history=filled).record_id == filled[0].id
    found = resolve_sources(["{raw}", "@-1"], namespace=ns, history=filled)
    assert [s.label for s in found] == ["{raw}", "@-1"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("missing.png", "image file missing.png does not exist"),
        ("@-9", "the history has 2 record(s)"),
        ("@20260101-000000-0000-abcdef", "no record 20260101-000000-0000-abcdef"),
        ("@-1:3", "has 1 image(s) (K from 0 to 0); got 3"),
        ("{nothing}", "no variable 'nothing' is defined"),
        (b"hello, not an image", "is not a PNG, JPEG, WebP or GIF image (19 bytes)"),
        (_png()[:40], "is a damaged or truncated image"),
        (3.5, "is a float; use a file path"),
    ],
)
def test_bad_sources_name_themselves(filled: History, source: object, expected: str) -> None:
    with pytest.raises(ValidationError, match="image") as info:
        resolve_source(source, history=filled, namespace={})
    assert expected in info.value.message
    assert info.value.field == "image"


def _huge_png(width: int, height: int) -> bytes:
    """A real PNG whose header claims width x height (a decompression bomb's shape), cheaply."""
    import struct
    import zlib

    data = bytearray(_png(8, 8))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize("side", [8000, 30000])  # over the cap; over Pillow's own bomb limit
def test_an_image_over_the_pixel_cap_is_too_large_not_damaged(side: int) -> None:
    with pytest.raises(ValidationError) as info:
        resolve_source(_huge_png(side, side), label="poster.png")
    message = info.value.message
    assert f"poster.png is too large: {side}×{side} pixels" in message
    assert "Limits.max_pixels" in message and "damaged" not in message
    assert info.value.field == "image"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{v[0]}", "image source {v[0]}: only a variable name or name.attribute can go in braces"),
        ("{pick(v)}", "assign it first (pic = pick(v)) and use {pic}"),
        ("{g.typo}", "image source {g.typo}: g (type Generation) has no attribute 'typo'"),
        ("{g.image.typo}", "g.image (type GeneratedImage) has no attribute 'typo'"),
    ],
)
def test_a_braced_expression_that_is_not_a_name_is_named(source: str, expected: str) -> None:
    img = GeneratedImage(None, "png", 16, 16, data=_png(16, 16))
    namespace = {"v": [_png(8, 8)], "g": Generation(request={"prompt": "x"}, images=[img])}
    with pytest.raises(ValidationError) as info:
        resolve_source(source, namespace=namespace)
    assert expected in info.value.message
    for wrong in ("NoneType", "does not exist"):
        assert wrong not in info.value.message


def test_a_failed_generation_is_refused_by_name() -> None:
    gen = Generation(request={"prompt": "x"}, status="error")
    with pytest.raises(ValidationError, match="has no images"):
        resolve_source(gen)


def test_a_folder_and_an_unreadable_text_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is a folder"):
        resolve_source(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("just words")
    with pytest.raises(ValidationError, match=r"notes.txt is not a PNG"):
        resolve_source(notes)


def test_edit_body_is_a_plain_dict_that_carries_inputs() -> None:
    img, m = resolve_source(_png(64, 64)), resolve_source(mask((64, 64), box=(0, 0, 8, 8)))
    body = EditBody({"prompt": "p", "model": "gpt-image-2"}, [img], m)
    assert dict(body) == {"prompt": "p", "model": "gpt-image-2"}
    assert [role for role, _ in body.inputs] == ["image", "mask"]
    import copy

    assert copy.deepcopy(body).mask == m
    assert "data" not in repr(img) or "b'" not in repr(img)  # bytes never in a repr


def _alpha_at(png: bytes, xy: tuple[int, int]) -> int:
    with Image.open(io.BytesIO(png)) as img:
        assert img.mode == "RGBA"
        return int(img.getpixel(xy)[3])


def test_mask_box_and_boxes() -> None:
    png = mask((100, 60), box=(10, 10, 30, 20))
    assert _alpha_at(png, (15, 15)) == 0  # inside: editable
    assert _alpha_at(png, (50, 50)) == 255  # outside: kept
    assert _alpha_at(png, (30, 20)) == 255  # the box's far edge is exclusive
    two = mask(_png(100, 60), boxes=[(0, 0, 10, 10), (0.5, 0.5, 1.0, 1.0)])
    assert _alpha_at(two, (5, 5)) == 0 and _alpha_at(two, (99, 59)) == 0
    assert _alpha_at(two, (20, 5)) == 255
    assert resolve_source(two).width == 100


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "needs box="),
        ({"box": (0, 0, 200, 10)}, "is not inside the 100x60 image"),
        ({"box": (10, 10, 5, 20)}, "is not inside"),
        ({"box": (1, 2, 3)}, "a mask box is (x0, y0, x1, y1)"),
    ],
)
def test_mask_refusals(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        mask((100, 60), **kwargs)  # type: ignore[arg-type]
    assert expected in info.value.message
