"""SVG answers: checked as XML, measured, drawn to a raster with external references removed,
and never handed to HTML as markup (issue 23 point 3)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from cometnb._core import images
from cometnb._core.errors import ResponseError
from cometnb._core.svg import SVG_MAX_BYTES, check_svg, is_svg, render_svg
from cometnb.sim.images import ImageSpec, render

NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(body: str, attrs: str = 'width="200" height="100"') -> bytes:
    return f'<?xml version="1.0"?>\n<svg {NS} {attrs}>{body}</svg>'.encode()


def pixels(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as img:
        return img.convert("RGB")


@pytest.fixture
def red_png(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    Image.new("RGB", (50, 50), (255, 0, 0)).save(path)
    return path


def test_recognised_from_the_first_bytes() -> None:
    assert is_svg(svg("")) and images.sniff_format(svg("")) == "svg"
    assert is_svg(b"\xef\xbb\xbf  <!-- made by hand -->\n<svg " + NS.encode() + b"/>")
    assert is_svg(b"<!DOCTYPE svg>\n<svg/>")
    for other in (b"<?xml version='1.0'?><html/>", b"<html><svg/></html>", b"\x89PNG\r\n\x1a\n"):
        assert not is_svg(other)
    assert images.mime_for(svg("")) == "image/svg+xml"


@pytest.mark.parametrize(
    ("attrs", "size"),
    [
        ('width="200" height="100"', (200, 100)),
        ('width="200px" height="50.4"', (200, 50)),
        ('width="1in" height="72pt"', (96, 96)),
        ('viewBox="0 0 1536 1024"', (1536, 1024)),
        ('width="100%" height="100%" viewBox="0,0,300,600"', (300, 600)),
        ('width="400" viewBox="0 0 200 100"', (400, 200)),
        ('height="50" viewBox="0 0 200 100"', (100, 50)),
        ("", (100, 100)),
        ('width="-5" height="abc" viewBox="0 0 0 10"', (100, 100)),
    ],
)
def test_intrinsic_size(attrs: str, size: tuple[int, int]) -> None:
    info = check_svg(svg("<rect/>", attrs))
    assert (info.width, info.height) == size
    assert images.inspect_image(svg("<rect/>", attrs)) == ("svg", *size)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (svg("<rect>"), "not well-formed XML"),
        (b"<svg " + NS.encode() + b">\xff\xfe</svg>", "not well-formed XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><svg>&b;</svg>',
            "declares entities",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<svg>&x;</svg>",
            "declares entities",
        ),
        (b'<?xml version="1.0"?><!-- <svg> --><html/>', "root is <html>, not <svg>"),
    ],
)
def test_refused_with_a_reason(data: bytes, says: str) -> None:
    with pytest.raises(ResponseError, match=says):
        images.inspect_image(data)
    with pytest.raises(ResponseError, match=says):
        images.make_preview(data, 256)


def test_a_plain_doctype_is_accepted() -> None:
    """Many SVG writers start with the SVG 1.1 DOCTYPE; it declares no entity and is read."""
    doctype = (
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    )
    head, rest = svg('<rect width="10" height="10"/>', 'width="64" height="32"').split(b"\n", 1)
    data = head + b"\n" + doctype + rest
    assert images.inspect_image(data) == ("svg", 64, 32)
    assert pixels(images.make_preview(data, 64)[0]).size == (64, 32)


def test_size_cap_checked_before_parsing() -> None:
    big = svg("<!--" + "x" * SVG_MAX_BYTES + "-->")
    with pytest.raises(ResponseError, match=f"more than the {SVG_MAX_BYTES:,} cometnb checks"):
        check_svg(big)


def test_drawn_by_the_renderer_at_the_preview_size() -> None:
    drawing = svg('<rect width="100" height="100" fill="#0000ff"/><rect x="100" width="100" '
                  'height="100" fill="#00ff00"/>')  # fmt: skip
    img = pixels(render_svg(drawing, 512))
    assert img.size == (512, 256)  # a vector scales up to the preview
    assert img.getpixel((100, 128)) == (0, 0, 255) and img.getpixel((400, 128)) == (0, 255, 0)
    tall = pixels(render_svg(svg("<rect/>", 'viewBox="0 0 100 300"'), 90))
    assert tall.size == (30, 90)


@pytest.mark.parametrize(
    "href",
    ["{absolute}", "red.png", "file://{absolute}", "http://127.0.0.1:9/red.png"],
)
@pytest.mark.parametrize("attr", ["href", "xlink:href"])
def test_external_references_are_not_loaded(
    red_png: Path, monkeypatch: pytest.MonkeyPatch, href: str, attr: str
) -> None:
    monkeypatch.chdir(red_png.parent)  # a relative reference would resolve here
    target = href.format(absolute=red_png)
    drawing = svg(
        f'<rect width="200" height="100" fill="#0000ff"/>'
        f'<image {attr}="{target}" x="0" y="0" width="100" height="100"/>'
        f'<use {attr}="{target}#frag"/>'
    )
    # resvg itself would read the file: the check is on what cometnb hands it.
    assert pixels(render_svg(drawing, 200)).getpixel((50, 50)) == (0, 0, 255)
    preview, _mime = images.make_preview(drawing, 200, encode="webp")
    assert pixels(preview).getpixel((50, 50))[2] > 200  # blue, never the red file


def test_inline_raster_and_local_references_still_draw() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 10), (255, 0, 0)).save(out, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    drawing = svg(
        '<defs><rect id="g" width="100" height="100" fill="#00ff00"/></defs>'
        f'<use href="#g"/><image href="{uri}" x="100" width="100" height="100"/>'
    )
    img = pixels(render_svg(drawing, 200))
    assert img.getpixel((50, 50)) == (0, 255, 0) and img.getpixel((150, 50)) == (255, 0, 0)


def test_a_preview_is_always_a_raster_never_the_markup() -> None:
    hostile = render(ImageSpec("a logo", 1024, 1024, "svg", hostile=True))
    assert b"<script>" in hostile and b"onload=" in hostile
    tiny = svg('<rect width="8" height="8" fill="red"/>', 'width="8" height="8"')
    for data in (hostile, tiny):
        for encode in ("webp", "auto"):
            for px in (8, 96, 512):
                made, mime = images.make_preview(data, px, encode=encode)
                assert images.sniff_format(made) in ("png", "jpeg", "webp")
                assert mime != "image/svg+xml" and b"<svg" not in made
                assert max(pixels(made).size) == px
    with pytest.raises(ValueError, match="never embedded"):
        images.data_uri(hostile)
    assert images.data_uri(images.make_preview(hostile, 64)[0]).startswith("data:image/")


def test_the_original_bytes_are_untouched_by_the_check_and_the_render() -> None:
    hostile = render(ImageSpec("a logo", 1024, 1024, "svg", hostile=True))
    before = bytes(hostile)
    images.inspect_image(hostile)
    images.make_preview(hostile, 256)
    assert hostile == before
