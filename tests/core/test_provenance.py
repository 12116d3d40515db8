"""Provenance metadata in image files, read back with Pillow; pixels are never re-encoded."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from PIL import Image

from cometnb._core.provenance import provenance, stamp

PROMPT = 'a lighthouse at dusk, "oil" <painting> & gulls — été'


def _image(fmt: str, mode: str = "RGB", **kw: object) -> bytes:
    im = Image.new(mode, (96, 64), (200, 40, 40, 120) if mode == "RGBA" else (200, 40, 40))
    im.putpixel((3, 4), (0, 128, 255, 255) if mode == "RGBA" else (0, 128, 255))
    buf = BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _fields() -> dict[str, str]:
    return provenance(
        prompt=PROMPT,
        model="gpt-image-2",
        params={"size": "1024x1024", "quality": "low", "n": 1, "prompt": PROMPT},
        record_id="20261201-101010-abcd",
        version="9.9.9",
    )


def _pixels(data: bytes) -> bytes:
    with Image.open(BytesIO(data)) as im:
        return im.tobytes()


def test_png_text_chunks_carry_prompt_settings_record_and_version() -> None:
    original = _image("PNG")
    stamped = stamp(original, _fields())
    with Image.open(BytesIO(stamped)) as im:
        text = dict(im.text)  # type: ignore[attr-defined]
    assert text["Description"] == PROMPT
    assert text["parameters"].startswith(PROMPT + "\nModel: gpt-image-2, size: 1024x1024")
    assert "Record: 20261201-101010-abcd" in text["parameters"]
    blob = json.loads(text["cometnb"])
    assert blob["record_id"] == "20261201-101010-abcd" and blob["version"] == "9.9.9"
    assert blob["settings"] == {"size": "1024x1024", "quality": "low", "n": 1}
    assert _pixels(stamped) == _pixels(original)


@pytest.mark.parametrize(
    ("fmt", "mode", "kw"),
    [
        ("JPEG", "RGB", {"quality": 90}),
        ("WEBP", "RGB", {"quality": 80}),
        ("WEBP", "RGBA", {"lossless": True}),
        ("WEBP", "RGBA", {"quality": 80}),
    ],
)
def test_jpeg_and_webp_get_an_xmp_packet_and_keep_their_pixels(
    fmt: str, mode: str, kw: dict[str, object]
) -> None:
    original = _image(fmt, mode, **kw)
    stamped = stamp(original, _fields())
    with Image.open(BytesIO(stamped)) as im:
        im.load()
        xmp = im.info["xmp"]
        assert im.mode == Image.open(BytesIO(original)).mode
    xmp_text = xmp.decode() if isinstance(xmp, bytes) else xmp
    assert "gpt-image-2" in xmp_text and "20261201-101010-abcd" in xmp_text
    assert "&lt;painting&gt; &amp; gulls" in xmp_text  # escaped, so the XML stays valid
    assert _pixels(stamped) == _pixels(original)  # lossy formats are not re-encoded


def test_xmp_is_well_formed_xml() -> None:
    import xml.dom.minidom

    stamped = stamp(_image("JPEG"), _fields())
    with Image.open(BytesIO(stamped)) as im:
        xmp = im.info["xmp"]
    raw = xmp if isinstance(xmp, bytes) else xmp.encode()
    start, end = raw.index(b"<x:xmpmeta"), raw.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    doc = xml.dom.minidom.parseString(raw[start:end])
    assert doc.getElementsByTagName("rdf:li")[0].firstChild.data == PROMPT  # type: ignore[union-attr]


def test_other_bytes_are_returned_unchanged() -> None:
    assert stamp(b"GIF89a...", _fields()) == b"GIF89a..."


def test_the_key_never_reaches_the_metadata(fake_key: str) -> None:
    from cometnb._core.errors import register_secret

    register_secret(fake_key)
    fields = provenance(prompt=f"cat {fake_key}", model="m", params={"user": fake_key})
    assert all(fake_key not in v for v in fields.values())
