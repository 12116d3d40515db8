"""Content Credentials: read from stored originals, shown as a mark, kept valid (or removed, and
said so) in every copy that leaves the history; AI-generated labels on every copy.

The C2PA fixtures are signed inside the tests with a throwaway CA and leaf made with
``cryptography`` (``cometnb.sim.signing``), no network. What is checked is the binding (the
signature holds and covers these bytes), not trust in the signer.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import sys
import xml.dom.minidom
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import c2pa
import pytest
from PIL import Image

from cometnb._core import provenance as cc_mod
from cometnb._core.generations import ApiImage, ApiResult
from cometnb._core.provenance import (
    DIGITAL_SOURCE_TYPE,
    clear_cache,
    has_store,
    labelled_copy,
    read_credentials,
    stamp,
    store_spans,
    strip_store,
)
from cometnb.sim.signing import SimSigner

MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="80" height="56">'
    b'<rect width="80" height="56" fill="#1e6ec8"/><circle cx="40" cy="28" r="12"/></svg>'
)
PROMPT = 'a harbour at night, "neon" <signs> & rain'
IPTC_TAG = "Iptc4xmpExt:DigitalSourceType"


@pytest.fixture(scope="module")
def signer() -> Iterator[SimSigner]:
    s = SimSigner(organisation="Test Issuer & Co")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _picture(fmt: str, colour: tuple[int, int, int] = (30, 110, 200)) -> bytes:
    if fmt == "svg":
        return SVG
    im = Image.new("RGB", (80, 56), colour)
    for x in range(0, 80, 8):
        im.paste((250, 250, 250), (x, 20, x + 4, 30))
    out = io.BytesIO()
    im.save(out, {"jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}.get(fmt, "PNG"))
    return out.getvalue()


def _validate(data: bytes, fmt: str) -> str | None:
    """c2pa's own verdict on ``data`` ("Valid" / "Invalid"), ``None`` when it has no manifest."""
    reader = c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data))
    if reader is None:
        return None
    with reader:
        return reader.get_validation_state()


def _tamper_png(data: bytes) -> bytes:
    """Other pixels, same manifest: the IDAT chunk replaced by a valid one of a changed image
    (a decodable file whose hard binding no longer holds)."""
    other = _picture("png", (200, 30, 30))
    idat = _chunk(other, b"IDAT")
    old = _chunk(data, b"IDAT")
    return data.replace(old, idat)


def _chunk(data: bytes, kind: bytes) -> bytes:
    at = 8
    while at < len(data):
        size = struct.unpack(">I", data[at : at + 4])[0]
        if data[at + 4 : at + 8] == kind:
            return data[at : at + 12 + size]
        at += 12 + size
    raise AssertionError(f"no {kind!r} chunk")


def _xmp_of(data: bytes) -> str:
    """The XMP packet in a file, read with Pillow where it can, else by plain parsing (GIF)."""
    if data.lstrip().startswith(b"<?xml"):  # SVG: the <metadata> element's packet
        return data.decode("utf-8")
    if data[:4] == b"GIF8":
        start = data.index(b"XMP DataXMP") + len(b"XMP DataXMP")
        end = data.index(b'<?xpacket end="r"?>', start) + len(b'<?xpacket end="r"?>')
        return data[start:end].decode("utf-8")
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        raw = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    assert raw, "no XMP packet"
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _iptc_source_type(xmp: str) -> str:
    start, end = xmp.index("<x:xmpmeta"), xmp.index("</x:xmpmeta>") + len("</x:xmpmeta>")
    doc = xml.dom.minidom.parseString(xmp[start:end].encode())
    node = doc.getElementsByTagName(IPTC_TAG)[0].firstChild
    assert node is not None
    return str(node.data)  # type: ignore[attr-defined]


def _own_fields(xmp: str) -> dict[str, str]:
    doc = xml.dom.minidom.parseString(
        xmp[xmp.index("<x:xmpmeta") : xmp.index("</x:xmpmeta>") + 12].encode()
    )
    out = {}
    for tag in ("cometnb:content_credentials", "cometnb:cometnb"):
        node = doc.getElementsByTagName(tag)[0].firstChild
        out[tag.split(":")[1]] = str(node.data) if node is not None else ""  # type: ignore[attr-defined]
    return out


SOURCE = {
    "prompt": PROMPT,
    "model": "gpt-image-2",
    "params": {"size": "1024x1024", "quality": "high"},
    "record_id": "20261205-220000-0001-abcdef",
}


# --- finding and reading manifests --------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "svg"])
def test_a_signed_image_reads_issuer_generator_source_type_and_valid(
    signer: SimSigner, fmt: str
) -> None:
    signed = signer.sign(_picture(fmt), MIME[fmt])
    assert has_store(io.BytesIO(signed)) and not has_store(io.BytesIO(_picture(fmt)))
    found = read_credentials(signed)
    assert found is not None
    assert found.state == "valid" and found.valid and not found.trusted
    assert found.issuer == "Test Issuer & Co"
    assert found.claim_generator is not None
    assert found.claim_generator.startswith("cometnb-simulator")
    assert found.digital_source_type == DIGITAL_SOURCE_TYPE
    assert found.summary.startswith("AI-generated · cometnb-simulator")
    assert found.summary.endswith("signed by Test Issuer & Co · valid")
    # The store found by its headers is exactly what c2pa reads: without it, nothing.
    assert _validate(strip_store(signed), fmt) is None and store_spans(strip_store(signed)) == []


def test_a_tampered_image_is_invalid_and_says_why(signer: SimSigner) -> None:
    signed = signer.sign(_picture("png"), "image/png")
    for tampered in (_tamper_png(signed), stamp(signed, {"parameters": "added later"})):
        Image.open(io.BytesIO(tampered)).load()  # still a good picture
        found = read_credentials(tampered)
        assert found is not None and found.state == "invalid" and not found.valid
        assert any(p.startswith("assertion.dataHash.mismatch") for p in found.problems)
        assert "invalid" in found.summary
        assert _validate(tampered, "png") == "Invalid"  # c2pa agrees


def test_an_unsigned_image_has_none_and_never_loads_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # any import of it would now fail
    for fmt in ("png", "jpeg", "webp", "gif"):
        assert read_credentials(_picture(fmt)) is None
    assert read_credentials(b'<svg xmlns="http://www.w3.org/2000/svg"/>') is None


def test_without_c2pa_python_a_manifest_is_still_noticed(
    signer: SimSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = signer.sign(_picture("jpeg"), "image/jpeg")
    monkeypatch.setitem(sys.modules, "c2pa", None)
    found = read_credentials(signed)
    assert found is not None and found.state == "unverified"
    hint = "install cometnb[c2pa] to read Content Credentials"
    assert found.summary == f"a C2PA manifest is embedded; {hint}"


# --- a history with signed, tampered and unsigned records ----------------------------------


def _add(hist: Any, data: bytes, fmt: str, prompt: str) -> Any:
    result = ApiResult([ApiImage(data, fmt, 80, 56, None)], created=1_795_000_000, usage=None)
    return hist.record_success({"prompt": prompt, "model": "gpt-image-1"}, result, elapsed_s=1.0)


@pytest.fixture
def mixed(hist: Any, signer: SimSigner) -> dict[str, Any]:
    """200 ordinary records (failures, cancellations, tags, long prompts, five models) plus a
    signed PNG, JPEG and WebP, a tampered PNG and an unsigned PNG."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    try:
        import _seed_history
    finally:
        sys.path.pop(0)
    _seed_history.seed(hist.path, 200)
    recs = {
        fmt: _add(hist, signer.sign(_picture(fmt), MIME[fmt]), fmt, f"{PROMPT} ({fmt})")
        for fmt in ("png", "jpeg", "webp")
    }
    recs["tampered"] = _add(
        hist, _tamper_png(signer.sign(_picture("png"), "image/png")), "png", "tampered"
    )
    recs["unsigned"] = _add(hist, _picture("png"), "png", "unsigned")
    return recs


def test_record_c2pa_and_the_card_mark(hist: Any, mixed: dict[str, Any]) -> None:
    from cometnb._views.cards import record_html

    for fmt in ("png", "jpeg", "webp"):
        rec = hist.get(mixed[fmt].id)
        assert rec.c2pa is not None and rec.c2pa.state == "valid"
        html = record_html(rec)
        assert html.count('class="cometnb-c2pa cometnb-c2pa-valid"') == 1
        assert "<details" in html and "Test Issuer &amp; Co" in html  # escaped
        assert "AI-generated (http://cv.iptc.org/newscodes/digitalsourcetype/" in html
    bad = hist.get(mixed["tampered"].id)
    assert bad.c2pa.state == "invalid"
    assert "Content Credentials: invalid" in record_html(bad)
    assert "image was changed after signing" in record_html(bad)
    plain = hist.get(mixed["unsigned"].id)
    assert plain.c2pa is None and "cometnb-c2pa" not in record_html(plain)
    assert "Content Credentials" not in record_html(plain)


def test_compare_table_and_panel_rows_show_the_mark(hist: Any, mixed: dict[str, Any]) -> None:
    from cometnb._notebook.panel_history import _caption
    from cometnb._views.history import compare_html, history_html

    chosen = [hist.get(mixed[k].id) for k in ("png", "tampered", "unsigned")]
    page = compare_html(chosen)
    assert page.count("cometnb-c2pa-valid") == 1 and page.count("cometnb-c2pa-invalid") == 1
    table = history_html(list(hist))
    assert table.count("cometnb-c2pa-valid") == 3 and table.count("cometnb-c2pa-invalid") == 1
    rows = [_caption(rec) for rec in hist]
    assert len(rows) == 205
    assert sum("cometnb-c2pa-valid" in r for r in rows) == 3
    assert sum("cometnb-c2pa-invalid" in r for r in rows) == 1


def test_a_200_record_view_parses_each_manifest_once(
    hist: Any, mixed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cometnb._views.history import history_html

    calls: list[Any] = []
    real = cc_mod._parse

    def counting(stream: Any) -> Any:
        calls.append(stream)
        return real(stream)

    monkeypatch.setattr(cc_mod, "_parse", counting)
    records = list(hist)
    first = history_html(records, limit=len(records))
    files = sum(len(r.images) for r in records)
    assert len(calls) == files  # every stored file looked at once
    assert history_html(records, limit=len(records)) == first
    assert len(calls) == files  # the second drawing parsed nothing


# --- copies: AI-generated labels everywhere, the manifest kept valid or removed -----------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif"])
def test_every_unsigned_copy_is_labelled_in_the_file(fmt: str) -> None:
    original = _picture(fmt)
    copy = labelled_copy(original, SOURCE)
    assert copy.c2pa == "none" and copy.sidecar is None
    xmp = _xmp_of(copy.data)
    assert _iptc_source_type(xmp) == DIGITAL_SOURCE_TYPE
    fields = _own_fields(xmp)
    assert fields["content_credentials"] == "none"
    assert json.loads(fields["cometnb"])["record_id"] == SOURCE["record_id"]
    with Image.open(io.BytesIO(copy.data)) as a, Image.open(io.BytesIO(original)) as b:
        assert a.tobytes() == b.tobytes()  # nothing re-encoded


def test_an_svg_copy_carries_an_escaped_metadata_element() -> None:
    svg = (
        b'<?xml version="1.0"?>\n<!-- <svg> in a comment -->\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" data-x="a>b" width="8" height="8">'
        b'<rect width="8" height="8" fill="red"/></svg>'
    )
    copy = labelled_copy(svg, {**SOURCE, "prompt": "</metadata><script>alert(1)</script>"})
    doc = xml.dom.minidom.parseString(copy.data)
    root = doc.documentElement
    assert root.tagName == "svg" and root.getAttribute("data-x") == "a>b"
    first = root.firstChild
    assert first is not None and first.nodeName == "metadata"
    assert doc.getElementsByTagName("script") == []  # the prompt stayed text
    assert doc.getElementsByTagName(IPTC_TAG)[0].firstChild.data == DIGITAL_SOURCE_TYPE  # type: ignore[union-attr]
    assert b"&lt;script&gt;" in copy.data


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "svg"])
def test_kept_manifest_still_validates_and_the_labels_go_beside_it(
    signer: SimSigner, fmt: str
) -> None:
    signed = signer.sign(_picture(fmt), MIME[fmt])
    kept = labelled_copy(signed, SOURCE)
    assert kept.c2pa == "kept" and kept.data == signed
    assert _validate(kept.data, fmt) == "Valid"
    assert kept.sidecar is not None
    sidecar = kept.sidecar.decode()
    assert _iptc_source_type(sidecar) == DIGITAL_SOURCE_TYPE
    assert _own_fields(sidecar)["content_credentials"] == "kept"

    removed = labelled_copy(signed, SOURCE, keep_c2pa=False)
    assert removed.c2pa == "removed" and removed.sidecar is None
    assert _validate(removed.data, fmt) is None  # no manifest left to break
    xmp = _xmp_of(removed.data)
    assert _iptc_source_type(xmp) == DIGITAL_SOURCE_TYPE
    assert _own_fields(xmp)["content_credentials"] == "removed"


def test_save_keeps_the_manifest_valid_or_says_it_removed_it(
    hist: Any, mixed: dict[str, Any], tmp_path: Path
) -> None:
    rec = hist.get(mixed["png"].id)
    img = rec.images[0]
    saved = img.save(tmp_path / "kept.png")
    assert saved.read_bytes() == img.path.read_bytes()
    assert _validate(saved.read_bytes(), "png") == "Valid"
    assert read_credentials(saved) is not None and read_credentials(saved).valid  # type: ignore[union-attr]
    sidecar = (tmp_path / "kept.xmp").read_text(encoding="utf-8")
    assert _iptc_source_type(sidecar) == DIGITAL_SOURCE_TYPE
    assert json.loads(_own_fields(sidecar)["cometnb"])["record_id"] == rec.id

    plain = img.save(tmp_path / "plain.png", keep_c2pa=False)
    assert _validate(plain.read_bytes(), "png") is None and not (tmp_path / "plain.xmp").exists()
    with Image.open(plain) as im:
        assert im.text["content_credentials"] == "removed"  # type: ignore[attr-defined]
        assert DIGITAL_SOURCE_TYPE in im.text["XML:com.adobe.xmp"]  # type: ignore[attr-defined]
    assert hist.get(mixed["png"].id).c2pa.valid  # the history's original is untouched


def test_every_exported_copy_carries_the_iptc_field(
    hist: Any, mixed: dict[str, Any], tmp_path: Path
) -> None:
    records = [hist.get(mixed[k].id) for k in ("png", "jpeg", "webp", "tampered", "unsigned")]
    records += [r for r in list(hist)[:40] if r.images]  # seeded PNG / JPEG / WebP

    with zipfile.ZipFile(hist.export(tmp_path / "out.zip", records=records)) as zf:
        names = set(zf.namelist())
        images = [n for n in names if n.startswith("images/") and not n.endswith(".xmp")]
        assert len(images) == sum(len(r.images) for r in records)
        for name in images:
            data = zf.read(name)
            sidecar = str(Path(name).with_suffix(".xmp"))
            if has_store(io.BytesIO(data)):  # a kept manifest: bytes as stored, labels beside
                xmp = zf.read(sidecar).decode()
                fmt = {".jpeg": "jpeg", ".jpg": "jpeg", ".webp": "webp"}.get(
                    Path(name).suffix, "png"
                )
                expected = "Invalid" if "tampered" in name else "Valid"
                assert _validate(data, fmt) == expected
            else:
                assert sidecar not in names
                xmp = _xmp_of(data)
            assert _iptc_source_type(xmp) == DIGITAL_SOURCE_TYPE, name

    page = hist.export(tmp_path / "gallery.html", records=records).read_text(encoding="utf-8")
    # An edit's input thumbnails (the sources strip) are the user's inputs, not generated
    # copies, so only the result images are required to carry the label.
    results_only = re.sub(r'<figure class="cometnb-source".*?</figure>', "", page, flags=re.S)
    assert results_only != page  # the seeded history has edits: their strips were there
    uris = re.findall(r'src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', results_only)
    assert len(uris) >= len(records)
    for _mime, b64 in uris:
        xmp = _xmp_of(base64.b64decode(b64))
        assert _iptc_source_type(xmp) == DIGITAL_SOURCE_TYPE
    assert page.count("cometnb-c2pa-valid") == 3 and page.count("cometnb-c2pa-invalid") == 1


# --- the simulator signs when asked ---------------------------------------------------------


def test_the_simulator_signs_only_when_asked(
    hist: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMETNB_SIM_C2PA", raising=False)
    from cometnb import Client
    from cometnb.sim import SimServer

    with (
        SimServer(sign_c2pa=True) as sim,
        Client(api_key="sk-sim-any-key-123456", base_url=sim.base_url, history=hist) as c,
    ):
        assert sim.signs_c2pa
        gens = [
            c.generate("a signed lighthouse", model="gpt-image-1-mini", output_format=f)
            for f in ("png", "jpeg", "webp")
        ]
    from cometnb._views.cards import generation_html  # the cell's card and the panel's results

    for gen in gens:
        assert "cometnb-c2pa-valid" in generation_html(gen)
        found = hist.get(gen.record_id).c2pa
        assert found is not None and found.valid
        assert found.claim_generator is not None
        assert found.claim_generator.startswith("cometnb-simulator")
        assert found.digital_source_type == DIGITAL_SOURCE_TYPE
    with (
        SimServer() as sim,
        Client(api_key="sk-sim-any-key-123456", base_url=sim.base_url, history=hist) as c,
    ):
        assert not sim.signs_c2pa  # off by default
        plain = c.generate("an unsigned lighthouse", model="gpt-image-1-mini")
    assert hist.get(plain.record_id).c2pa is None
    assert "cometnb-c2pa" not in generation_html(plain)


def test_new_signed_images_are_read_in_the_background(
    hist: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cometnb import Client
    from cometnb._storage.preview_queue import QUEUE
    from cometnb.sim import SimServer

    with (
        SimServer(sign_c2pa=True) as sim,
        Client(api_key="sk-sim-any-key-123456", base_url=sim.base_url, history=hist) as c,
    ):
        gen = c.generate("a signed harbour", model="gpt-image-1-mini", n=2)
    assert QUEUE.drain(30.0)
    calls: list[Any] = []
    monkeypatch.setattr(cc_mod, "_parse", lambda stream: calls.append(stream))
    rec = hist.get(gen.record_id)
    assert [img.c2pa.state for img in rec.images] == ["valid", "valid"]  # type: ignore[union-attr]
    assert calls == []  # both were read by the preview worker, after the record committed


def test_a_copy_without_a_known_request_is_still_labelled() -> None:
    copy = labelled_copy(_picture("png"), None)
    with Image.open(io.BytesIO(copy.data)) as im:
        text = dict(im.text)  # type: ignore[attr-defined]
    assert "parameters" not in text and text["Software"].startswith("cometnb ")
    assert _iptc_source_type(text["XML:com.adobe.xmp"]) == DIGITAL_SOURCE_TYPE


def test_an_animated_gif_copy_keeps_its_frames_timing_and_loop() -> None:
    colours = [(230, 60, 40), (40, 180, 90), (30, 90, 220), (240, 200, 40)]
    frames = [Image.new("RGB", (48, 32), c) for c in colours]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=120, loop=0)
    original = out.getvalue()
    copy = labelled_copy(original, SOURCE)
    assert _iptc_source_type(_xmp_of(copy.data)) == DIGITAL_SOURCE_TYPE

    def frames_of(data: bytes) -> tuple[int, Any, Any, list[bytes]]:
        with Image.open(io.BytesIO(data)) as im:
            pixels = []
            for k in range(im.n_frames):
                im.seek(k)
                pixels.append(im.convert("RGB").tobytes())
            return im.n_frames, im.info.get("loop"), im.info.get("duration"), pixels

    assert frames_of(copy.data) == frames_of(original)
    assert frames_of(copy.data)[:3] == (4, 0, 120)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "svg"])
def test_truncated_or_damaged_files_never_raise(signer: SimSigner, fmt: str) -> None:
    signed = signer.sign(_picture(fmt), MIME[fmt])
    spans = store_spans(signed)
    assert spans
    at, length = spans[0]
    cuts = [signed[:n] for n in (4, 16, at + 12, at + length // 2, len(signed) - 3)]
    garbled = signed[: at + 40] + bytes(200) + signed[at + 240 :]  # the manifest itself damaged
    for damaged in [*cuts, garbled]:
        found = read_credentials(damaged)
        assert found is None or found.state == "invalid"
        labelled_copy(damaged, SOURCE)  # a copy of a damaged file is still made
        labelled_copy(damaged, SOURCE, keep_c2pa=False)
    assert read_credentials(garbled) is not None  # a damaged manifest is not "no manifest"
