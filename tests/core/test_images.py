"""Decoding payloads, sniffing formats, reading headers and making previews."""

from __future__ import annotations

import base64
import io
import json

import pytest
from conftest import SHARED_FIXTURES
from PIL import Image

from cometnb._core import images as _decode
from cometnb._core import images as _previews
from cometnb._core.errors import ResponseError, register_secret

FIXTURES = SHARED_FIXTURES
FORMATS = ("png", "jpeg", "webp", "gif")
PIL_NAME = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, PIL_NAME[fmt], **params)
    return out.getvalue()


def photo(width: int = 1024, height: int = 1024) -> Image.Image:
    """Photo-like pixels: gradients plus sensor-like noise (PNG compresses it poorly)."""
    grad = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    bands = (
        Image.blend(grad, noise, 0.5),
        Image.blend(grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise, 0.4),
        Image.blend(grad.transpose(Image.Transpose.FLIP_TOP_BOTTOM), noise, 0.5),
    )
    return Image.merge("RGB", bands)


def with_alpha(img: Image.Image, alpha: int = 128) -> Image.Image:
    rgba = img.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    return encode(photo(), "png")


# --- sniffing, mime, data URIs ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_and_mime_every_format(fmt: str) -> None:
    data = encode(photo(32, 24), fmt)
    assert _decode.sniff_format(data) == fmt
    assert _decode.mime_for(data) == f"image/{fmt}"


@pytest.mark.parametrize("data", [b"", b"hello world", b"RIFF\x00\x00\x00\x00WAVE", b"\x89PN"])
def test_sniff_unknown(data: bytes) -> None:
    assert _decode.sniff_format(data) is None
    assert _decode.mime_for(data) == "application/octet-stream"


@pytest.mark.parametrize("fmt", FORMATS)
def test_data_uri_round_trip(fmt: str) -> None:
    data = encode(photo(16, 16), fmt)
    uri = _decode.data_uri(data)
    assert uri.startswith(f"data:image/{fmt};base64,")
    assert _decode.decode_b64_image(uri) == data


# --- base64 -----------------------------------------------------------------------------------


def test_decode_plain_str_and_bytes() -> None:
    data = encode(photo(40, 40), "png")
    text = base64.b64encode(data).decode()
    assert _decode.decode_b64_image(text) == data
    assert _decode.decode_b64_image(text.encode()) == data


def test_decode_tolerates_line_breaks_and_spaces() -> None:
    data = encode(photo(40, 40), "png")
    wrapped = base64.encodebytes(data).decode()  # 76-char lines, as MIME tools write them
    assert "\n" in wrapped
    assert _decode.decode_b64_image(wrapped) == data
    assert _decode.decode_b64_image("  " + wrapped.replace("\n", "\r\n \t") + "\n") == data


def test_decode_accepts_data_uri_prefix() -> None:
    data = encode(photo(8, 8), "jpeg")
    b64 = base64.b64encode(data).decode()
    assert _decode.decode_b64_image(f"data:image/jpeg;base64,{b64}") == data
    assert _decode.decode_b64_image(f"DATA:image/png;BASE64,{b64}") == data


def test_decode_fixture_payload() -> None:
    body = json.loads((FIXTURES / "gpt-image-2.json").read_text())
    data = _decode.decode_b64_image(body["data"][0]["b64_json"])
    assert _decode.inspect_image(data) == ("jpeg", 1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "image data is empty"),
        ("   \n", "image data is empty"),
        ("data:image/png;base64,", "image data is empty"),
        ("iVBORw0K%GgoAAAA", "image data is not valid base64 (character '%' at offset 8)"),
        ("iVBO Rw0K\n-GgoAAAA", "image data is not valid base64 (character '-' at offset 8)"),
        (
            "iVBORw0KGgo",
            "image data is not valid base64 (11 characters is not a multiple of 4: truncated?)",
        ),
        ("AAAA=AAA", "image data is not valid base64 (misplaced '=' padding)"),
        ("iVBORé0K", "image data is not valid base64 (character 'é')"),
        ("data:image/png,iVBORw0K", "image data is a data: URI without ';base64,'"),
        ("data:image/png;base64", "image data is a data: URI without ';base64,'"),
    ],
)
def test_decode_corrupt_base64(text: str, message: str) -> None:
    with pytest.raises(ResponseError) as info:
        _decode.decode_b64_image(text)
    assert str(info.value) == message


@pytest.mark.parametrize("value", [None, 123, ["iVBORw0K"]])
def test_decode_rejects_non_text(value: object) -> None:
    with pytest.raises(ResponseError, match="image data must be a base64 string"):
        _decode.decode_b64_image(value)  # type: ignore[arg-type]


def test_decode_url_safe_alphabet_is_refused() -> None:
    # b64_json uses the standard alphabet; '-' and '_' mean the payload is not what we expect.
    with pytest.raises(ResponseError, match="character '_'"):
        _decode.decode_b64_image("ab_d")


# --- inspection -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_inspect_every_format(fmt: str) -> None:
    assert _decode.inspect_image(encode(photo(48, 30), fmt)) == (fmt, 48, 30)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"<html><body>Not Found</body></html>",
            "the server sent 35 bytes that are not an image (starts with "
            "'<html><body>Not Found</body></ht…')",
        ),
        (
            b'{"error": "x"}',
            'the server sent 14 bytes that are not an image (starts with \'{"error": "x"}\')',
        ),
        (
            b"\x00\x01binary\xff",
            "the server sent 9 bytes that are not an image (starts with '\\x00\\x01binary\\xff')",
        ),
        (b"", "the server sent 0 bytes that are not an image (starts with nothing)"),
    ],
)
def test_inspect_non_image(data: bytes, message: str) -> None:
    with pytest.raises(ResponseError) as info:
        _decode.inspect_image(data)
    assert str(info.value) == message


def test_non_image_excerpt_never_shows_the_key(fake_key: str) -> None:
    register_secret(fake_key)
    for body in (fake_key.encode(), f"Bearer {fake_key} was refused".encode()):
        with pytest.raises(ResponseError) as info:
            _decode.inspect_image(body)
        assert fake_key[:12] not in str(info.value)  # not even a prefix of it
        assert "[REDACTED]" in str(info.value)


def test_large_non_image_is_reported_with_a_short_excerpt() -> None:
    data = b"A" * 5_000_000
    with pytest.raises(ResponseError) as info:
        _decode.inspect_image(data)
    assert str(info.value).startswith("the server sent 5,000,000 bytes that are not an image")
    assert len(str(info.value)) < 120


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_image_is_refused(fmt: str) -> None:
    data = encode(photo(200, 200), fmt)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(ResponseError) as info:
        _decode.inspect_image(cut)
    assert (
        str(info.value) == f"the server sent a truncated {fmt.upper()} image ({len(cut):,} bytes)"
    )
    with pytest.raises(ResponseError, match="truncated"):
        _previews.make_preview(cut, 64)


def test_damaged_body_is_refused_by_preview() -> None:
    data = bytearray(encode(photo(300, 300), "png"))
    middle = len(data) // 2
    data[middle : middle + 4000] = bytes(4000)  # header and IEND intact, pixels garbage
    inspected = _decode.inspect_image(bytes(data))  # header-only: cannot see it
    assert inspected == ("png", 300, 300)
    with pytest.raises(ResponseError, match=r"^the server sent a damaged PNG image \("):
        _previews.make_preview(bytes(data), 100)


def test_damaged_header_of_a_known_format() -> None:
    data = bytearray(encode(photo(100, 100), "webp"))
    data[12:40] = b"\xff" * 28  # RIFF/WEBP magic and length intact, chunk header garbage
    with pytest.raises(ResponseError) as info:
        _decode.inspect_image(bytes(data))
    assert str(info.value) == f"the server sent a damaged WEBP image ({len(data):,} bytes)"


@pytest.mark.parametrize(("side", "limit", "expected"), [(64, 64, True), (65, 64, False)])
def test_fits(side: int, limit: int, expected: bool) -> None:
    assert _previews.fits(encode(photo(side, 10), "png"), limit) is expected
    assert _previews.fits(encode(photo(10, side), "png"), limit) is expected


# --- previews ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_preview_of_every_format_is_downscaled_jpeg(fmt: str) -> None:
    data = encode(photo(600, 400), fmt)
    preview, mime = _previews.make_preview(data, 150)
    assert mime == "image/jpeg"
    img = opened(preview)
    assert (img.format, img.size) == ("JPEG", (150, 100))


def test_photo_like_1024_png_preview_is_small(photo_png: bytes) -> None:
    assert len(photo_png) > 1_000_000  # really photo-like: PNG cannot compress the noise
    preview, mime = _previews.make_preview(photo_png, 512)
    assert mime == "image/jpeg"
    assert len(preview) < 150_000
    assert opened(preview).size == (512, 512)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_alpha_gives_png_preview(fmt: str) -> None:
    data = encode(with_alpha(photo(400, 200)), fmt)
    preview, mime = _previews.make_preview(data, 100)
    img = opened(preview)
    assert (mime, img.format, img.mode, img.size) == ("image/png", "PNG", "RGBA", (100, 50))
    assert img.getchannel("A").getextrema() == (128, 128)


def test_grey_with_alpha_gives_png_preview() -> None:
    grey = Image.linear_gradient("L").resize((300, 300))
    la = Image.merge("LA", (grey, Image.new("L", grey.size, 10)))
    preview, mime = _previews.make_preview(encode(la, "png"), 100)
    assert mime == "image/png"
    assert opened(preview).mode == "LA"


def test_palette_transparency_gives_png_preview() -> None:
    img = photo(300, 300).quantize(64)
    data = encode(img, "png", transparency=0)
    preview, mime = _previews.make_preview(data, 100)
    assert mime == "image/png"
    assert opened(preview).mode == "RGBA"


def test_transparent_gif_gives_png_preview() -> None:
    img = photo(300, 300).quantize(64)
    preview, mime = _previews.make_preview(encode(img, "gif", transparency=3), 100)
    assert mime == "image/png"
    assert opened(preview).getchannel("A").getextrema()[0] < 255


def test_fully_opaque_alpha_channel_gives_jpeg() -> None:
    data = encode(with_alpha(photo(400, 400), 255), "png")
    preview, mime = _previews.make_preview(data, 100)
    assert mime == "image/jpeg"
    assert opened(preview).mode == "RGB"


@pytest.mark.parametrize(
    ("size", "max_px", "expected"),
    [
        ((1536, 1024), 512, (512, 341)),
        ((1024, 1536), 512, (341, 512)),
        ((3840, 2160), 256, (256, 144)),
    ],
)
def test_preview_keeps_aspect_ratio(
    size: tuple[int, int], max_px: int, expected: tuple[int, int]
) -> None:
    preview, _ = _previews.make_preview(encode(photo(*size), "jpeg"), max_px)
    assert opened(preview).size == expected


def test_small_image_is_never_upscaled_and_kept_when_smaller() -> None:
    flat = encode(Image.new("RGB", (64, 48), (10, 120, 200)), "png")  # tiny PNG beats any JPEG
    preview, mime = _previews.make_preview(flat, 512)
    assert (preview, mime) == (flat, "image/png")


def test_small_image_is_reencoded_when_that_is_smaller() -> None:
    noisy = encode(photo(300, 200), "png")
    preview, mime = _previews.make_preview(noisy, 512)
    assert mime == "image/jpeg"
    assert len(preview) < len(noisy)
    assert opened(preview).size == (300, 200)  # same size: never upscaled


def test_preview_of_exactly_max_px_is_not_resized(photo_png: bytes) -> None:
    preview, _ = _previews.make_preview(photo_png, 1024)
    assert opened(preview).size == (1024, 1024)


def test_unusual_modes_are_converted() -> None:
    cmyk = encode(photo(200, 200).convert("CMYK"), "jpeg")
    grey16 = encode(Image.linear_gradient("L").resize((300, 300)).convert("I;16"), "png")
    for data in (cmyk, grey16):
        preview, mime = _previews.make_preview(data, 100)
        assert mime == "image/jpeg"
        assert opened(preview).mode in ("RGB", "L")


def test_preview_of_non_image_raises() -> None:
    with pytest.raises(ResponseError, match="not an image"):
        _previews.make_preview(b"<html>oops</html>", 256)


@pytest.mark.parametrize("max_px", [0, -5])
def test_preview_needs_positive_max_px(photo_png: bytes, max_px: int) -> None:
    with pytest.raises(ValueError, match="max_px must be at least 1"):
        _previews.make_preview(photo_png, max_px)


def test_cached_preview_fits_its_bound(photo_png: bytes) -> None:
    preview, _ = _previews.make_preview(photo_png, 256)
    assert _previews.fits(preview, 256)
    assert not _previews.fits(photo_png, 256)


# --- animated previews (a GIF card animates: issue 23 point 3) --------------------------------


def animation(frames: int, side: int, durations: list[int] | None = None) -> bytes:
    shots = []
    for i in range(frames):
        img = Image.new("RGB", (side, side), (20, 20, 20))
        img.paste(
            (230, 40 + 10 * (i % 20), 40), (i * side // frames, 0, (i + 1) * side // frames, side)
        )
        shots.append(img)
    out = io.BytesIO()
    durations = durations or [60 + 10 * i for i in range(frames)]
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=durations, loop=0)
    return out.getvalue()


def frames_of(data: bytes) -> list[tuple[tuple[int, int], int]]:
    with Image.open(io.BytesIO(data)) as img:
        found = []
        for k in range(getattr(img, "n_frames", 1)):
            img.seek(k)
            img.load()  # WebP sets a frame's duration as it decodes it
            found.append((img.size, int(img.info.get("duration", 0))))
        return found


@pytest.mark.parametrize(("encode", "mime"), [("webp", "image/webp"), ("auto", "image/gif")])
def test_an_animated_gif_previews_animated_within_the_size_cap(encode: str, mime: str) -> None:
    gif = animation(9, 960)
    made, kind = _previews.make_preview(gif, 512, encode=encode)
    assert kind == mime and _decode.sniff_format(made) == mime.split("/")[1]
    frames = frames_of(made)
    assert len(frames) == 9
    assert {size for size, _ in frames} == {(512, 512)}
    assert [ms for _, ms in frames] == [60 + 10 * i for i in range(9)]  # durations kept
    assert len(made) < len(gif)


def test_a_long_animation_is_thinned_and_keeps_its_length() -> None:
    gif = animation(80, 64, [40] * 80)
    frames = frames_of(_previews.make_preview(gif, 32, encode="webp")[0])
    assert len(frames) <= 32 and sum(ms for _, ms in frames) == 80 * 40


def test_an_animation_of_too_many_pixels_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    from cometnb._core.settings import active

    monkeypatch.setattr(active(), "limits", replace(active().limits, max_pixels=64 * 64 * 2))
    with pytest.raises(ResponseError, match="animation of 16 frames of 64×64 pixels"):
        _previews.make_preview(animation(16, 64), 32, encode="webp")


def test_a_still_gif_stays_a_still_preview() -> None:
    made, mime = _previews.make_preview(encode(photo(600, 400), "gif"), 300, encode="webp")
    assert mime == "image/webp" and len(frames_of(made)) == 1
