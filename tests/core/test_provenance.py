"""Provenance metadata in image files, read back with Pillow; pixels are never re-encoded."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

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
    for other in (b"BM6\x00\x00\x00 a bitmap", b"%PDF-1.7 not an image", b""):
        assert stamp(other, _fields()) == other


def test_the_key_never_reaches_the_metadata(fake_key: str) -> None:
    from cometnb._core.errors import register_secret

    register_secret(fake_key)
    fields = provenance(prompt=f"cat {fake_key}", model="m", params={"user": fake_key})
    assert all(fake_key not in v for v in fields.values())


# --- saved and exported copies ------------------------------------------------------------


def test_saved_copy_carries_provenance_and_the_original_stays_byte_identical(
    client: Any, tmp_path: Path
) -> None:
    import hashlib

    gen = client.generate("a lighthouse at dusk", model="gpt-image-1-mini", quality="low")
    original = gen.image.path
    before = hashlib.sha256(original.read_bytes()).hexdigest()
    saved = gen.image.save(tmp_path / "lighthouse.png")
    with Image.open(saved) as im:
        text = dict(im.text)  # type: ignore[attr-defined]
    blob = json.loads(text["cometnb"])
    assert blob["prompt"] == "a lighthouse at dusk" and blob["model"] == "gpt-image-1-mini"
    assert blob["record_id"] == gen.record_id and blob["settings"]["quality"] == "low"
    assert text["parameters"].startswith("a lighthouse at dusk\nModel: gpt-image-1-mini")
    assert hashlib.sha256(original.read_bytes()).hexdigest() == before
    assert _pixels(saved.read_bytes()) == _pixels(original.read_bytes())


def test_save_into_a_folder_keeps_the_name_and_refuses_a_wrong_suffix(
    client: Any, tmp_path: Path
) -> None:
    from cometnb._core.errors import ValidationError

    gen = client.generate("a fox", model="gpt-image-1-mini", output_format="jpeg")
    saved = gen.image.save(tmp_path)
    assert saved.name == gen.image.path.name and saved.suffix in (".jpeg", ".jpg")
    with Image.open(saved) as im:
        assert "gpt-image-1-mini" in str(im.info["xmp"])
    with pytest.raises(ValidationError, match=r"use the \.jpeg suffix"):
        gen.image.save(tmp_path / "fox.png")
    plain = gen.image.save(tmp_path / "plain.jpeg", metadata=False)
    assert plain.read_bytes() == gen.image.path.read_bytes()


def test_an_unstored_image_saves_with_its_request(sim: Any, tmp_path: Path) -> None:
    from cometnb import Client

    with Client(api_key="sk-sim-any-key-12345", base_url=sim.base_url, history=False) as c:
        gen = c.generate("a whale", model="gpt-image-1-mini", size="1024x1024")
    with Image.open(gen.image.save(tmp_path / "whale.png")) as im:
        blob = json.loads(im.text["cometnb"])  # type: ignore[attr-defined]
    assert blob["prompt"] == "a whale" and blob["record_id"] is None
    assert blob["settings"]["size"] == "1024x1024"


def test_zip_export_members_carry_provenance(client: Any, hist: Any, tmp_path: Path) -> None:
    import zipfile

    gen = client.generate("a red panda", model="gpt-image-1-mini")
    with zipfile.ZipFile(hist.export(tmp_path / "out.zip")) as zf:
        name = next(n for n in zf.namelist() if n.startswith("images/"))
        data = zf.read(name)
    with Image.open(BytesIO(data)) as im:
        assert json.loads(im.text["cometnb"])["record_id"] == gen.record_id  # type: ignore[attr-defined]
    assert _pixels(data) == _pixels(gen.image.path.read_bytes())
