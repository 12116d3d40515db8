"""The wire form of edits: multipart parts as httpx encodes them, parsed back by the simulator's
parser byte for byte; seedream data URIs; the dry-run description; the simulator's checks and
its derived pictures."""

from __future__ import annotations

import base64
import io
import os

import httpx
import pytest
from _history_helpers import image_bytes, noisy_png
from PIL import Image

from cometnb._client.exchange import (
    describe_edit,
    edit_path,
    form_fields,
    json_with_references,
    multipart_files,
)
from cometnb._core.edit_inputs import EditBody, mask, resolve_source
from cometnb._core.errors import ValidationError
from cometnb.sim.edits import (
    EditRefused,
    MultipartError,
    check_edit,
    form_request,
    input_tokens,
    json_references,
    parse_form,
    render_edit,
)


def _encoded(body: EditBody) -> tuple[str, bytes]:
    req = httpx.Request(
        "POST", "http://sim/v1/images/edits", data=form_fields(body), files=multipart_files(body)
    )
    return req.headers["content-type"], req.read()


def _body(*images: bytes, with_mask: bool = False, **fields: object) -> EditBody:
    inputs = [resolve_source(d, label=f"in{i}.png") for i, d in enumerate(images)]
    m = resolve_source(mask(images[0], box=(0, 0, 16, 16)), label="m.png") if with_mask else None
    return EditBody({"model": "gpt-image-1", "prompt": "at night", **fields}, inputs, m)


def test_one_image_is_an_image_part_several_are_image_brackets() -> None:
    one = _body(image_bytes(64, 64))
    assert [p[0] for p in multipart_files(one)] == ["image"]
    several = _body(image_bytes(64, 64), image_bytes(32, 32, "JPEG"), with_mask=True)
    parts = multipart_files(several)
    assert [p[0] for p in parts] == ["image[]", "image[]", "mask"]
    assert [(p[1][0], p[1][2]) for p in parts] == [
        ("in0.png", "image/png"),
        ("in1.jpg", "image/jpeg"),  # the extension follows the bytes, not the label
        ("mask-m.png", "image/png"),
    ]
    assert edit_path(several) == "/images/edits"
    assert edit_path({"model": "gpt-image-1", "prompt": "x"}) == "/images/generations"


def test_fields_are_form_text() -> None:
    body = _body(image_bytes(), n=2, stream=True, partial_images=1, input_fidelity="high")
    assert form_fields(body) == {
        "model": "gpt-image-1",
        "prompt": "at night",
        "n": "2",
        "stream": "true",
        "partial_images": "1",
        "input_fidelity": "high",
    }


def test_binary_parts_round_trip_through_the_simulator_parser() -> None:
    photo = noisy_png(96)  # incompressible bytes: every CR/LF pattern occurs
    body = _body(photo, image_bytes(40, 40, "WEBP"), with_mask=True, n=1)
    ctype, raw = _encoded(body)
    form = parse_form(ctype, raw)
    assert form.fields["prompt"] == "at night" and form.fields["n"] == "1"
    assert [f.name for f in form.files] == ["image[]", "image[]", "mask"]
    assert form.files[0].data == photo
    assert form.files[1].content_type == "image/webp"
    typed, inputs = form_request(form)
    assert typed["n"] == 1 and len(inputs.images) == 2 and inputs.mask is not None
    assert inputs.parts[0]["sha256"] == resolve_source(photo).sha256
    check_edit(typed, inputs)  # gpt-image-1 takes all of it


def test_the_simulator_refuses_octet_stream_and_bad_bodies() -> None:
    req = httpx.Request(
        "POST",
        "http://sim/",
        data={"prompt": "x", "model": "gpt-image-1"},
        files=[("image", ("blob", image_bytes(), "application/octet-stream"))],
    )
    form = parse_form(req.headers["content-type"], req.read())
    with pytest.raises(EditRefused, match="unsupported mimetype"):
        form_request(form)
    with pytest.raises(MultipartError, match="multipart/form-data"):
        parse_form("application/json", b"{}")
    with pytest.raises(EditRefused, match="Missing required parameter: 'image'"):
        form_request(parse_form(*_encoded_fields_only()))
    bad = httpx.Request("POST", "http://sim/", files=[("image", ("a.png", b"nope", "image/png"))])
    with pytest.raises(EditRefused, match="Invalid image file"):
        form_request(parse_form(bad.headers["content-type"], bad.read()))


def _encoded_fields_only() -> tuple[str, bytes]:
    req = httpx.Request(
        "POST",
        "http://sim/",
        data={"prompt": "x"},
        files=[("other", ("a.txt", b"t", "text/plain"))],
    )
    return req.headers["content-type"], req.read()


def test_the_simulator_applies_the_same_rules() -> None:
    body = _body(image_bytes(64, 64), input_fidelity="high")
    body["model"] = "gpt-image-2"
    ctype, raw = _encoded(body)
    typed, inputs = form_request(parse_form(ctype, raw))
    with pytest.raises(ValidationError, match="input_fidelity applies to gpt-image-1"):
        check_edit(typed, inputs)


def test_seedream_references_are_data_uris_and_decode_back() -> None:
    body = _body(image_bytes(50, 50), image_bytes(20, 20, "JPEG"))
    body["model"] = "doubao-seedream-4-0-250828"
    assert edit_path(body) == "/images/generations"
    sent = json_with_references(body)
    assert [uri.split(";")[0] for uri in sent["image"]] == ["data:image/png", "data:image/jpeg"]
    decoded = json_references(sent)
    assert decoded is not None and [i.width for i in decoded.images] == [50, 20]
    assert decoded.images[0].data == body.images[0].data
    with pytest.raises(EditRefused, match="data URI"):
        json_references({"image": ["https://example.com/x.png?a=1&b=2", 5]})
    junk = "data:image/png;base64," + base64.b64encode(os.urandom(30)).decode()
    with pytest.raises(EditRefused, match="Invalid image file"):
        json_references({"image": junk})


def test_dry_run_description_has_names_and_sizes_but_no_bytes() -> None:
    body = _body(image_bytes(64, 64), with_mask=True)
    shown = describe_edit(body)
    assert shown["endpoint"] == "/images/edits"
    assert shown["multipart fields"]["prompt"] == "at night"
    assert [(f["part"], f["source"], f["size"]) for f in shown["files"]] == [
        ("image", "in0.png", "64x64"),
        ("mask", "m.png", "64x64"),
    ]
    assert all(isinstance(f["bytes"], int) for f in shown["files"])
    text = repr(shown)
    assert "base64" not in text and "\\x89PNG" not in text
    seedream = _body(image_bytes(8, 8))
    seedream["model"] = "doubao-seedream-5-0-260128"
    assert describe_edit(seedream)["image (data URIs)"][0]["content_type"] == "image/png"


def test_results_visibly_derive_from_the_inputs() -> None:
    red = image_bytes(64, 64, "PNG", (250, 0, 0))
    ctype, raw = _encoded(_body(red, image_bytes(32, 32, "PNG", (0, 0, 250)), with_mask=True))
    _, inputs = form_request(parse_form(ctype, raw))
    out = render_edit(inputs, "at night", (256, 256), "png")
    with Image.open(io.BytesIO(out)) as img:
        assert img.size == (256, 256)
        rgb = img.convert("RGB")
        masked = rgb.getpixel((50, 58))  # inside the 16/64 box (64 px at 256), below the prompt
        plain = rgb.getpixel((128, 128))
    assert masked[0] > 150 and masked[2] > 150 and masked[1] < masked[0]  # magenta-tinted
    assert plain != masked
    # Different inputs give different pictures; the tokens grow with the inputs and fidelity.
    _, other = form_request(parse_form(*_encoded(_body(image_bytes(64, 64, "PNG", (0, 250, 0))))))
    assert render_edit(other, "at night", (64, 64), "png") != render_edit(
        inputs, "at night", (64, 64), "png"
    )
    assert input_tokens(inputs, "high") == 4 * input_tokens(inputs, None) > 0
