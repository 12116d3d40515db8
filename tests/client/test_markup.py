"""Markup edits (gpt-image-2.6, API_FACTS §10) over real HTTP against the simulator: the
annotations go as a ``markup`` part, only where the registry allows them, never with a mask,
the size of the first image; the history keeps them with the record like a mask."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from _history_helpers import image_bytes
from _markup import markup_png
from conftest import FAKE_KEY, assert_no_key_in_tree
from PIL import Image

import cometnb
from cometnb import Client, ImageRequest, ValidationError
from cometnb._core.edit_inputs import resolve_source
from cometnb._core.model_registry import MODELS
from cometnb.history import History
from cometnb.sim import SimServer

MARKUP_MODELS = ("gpt-image-2.6-flare", "gpt-image-2.6-sunburst")


def _photo(side: int = 256) -> bytes:
    return image_bytes(side, side, "PNG", (40, 120, 200))


def _parts(sim: SimServer) -> list[dict[str, object]]:
    parts = sim.requests[-1]["_parts"]
    assert isinstance(parts, list)
    return parts


@pytest.mark.parametrize("model", MARKUP_MODELS)
def test_markup_goes_as_its_own_part_and_is_kept(
    client: Client, sim: SimServer, hist: History, model: str
) -> None:
    layer = markup_png()
    gen = client.edit("make the circled cup red", _photo(), markup=layer, model=model)
    assert gen.ok
    parts = _parts(sim)
    assert [(p["name"], p["content_type"]) for p in parts] == [
        ("image", "image/png"),
        ("markup", "image/png"),
    ]
    assert str(parts[1]["filename"]).startswith("markup")
    assert parts[1]["sha256"] == resolve_source(layer).sha256
    rec = hist[-1]
    assert [s.role for s in rec.sources] == ["image", "markup"]
    stored = rec.sources[1].path
    assert stored is not None and stored.read_bytes() == layer
    # The simulator draws the annotations over its result: red where the arrow runs.
    with Image.open(io.BytesIO(gen.image.data)) as img:
        x = y = img.width * 3 // 16  # on the arrow's diagonal
        assert img.convert("RGB").getpixel((x, y))[0] > 200


def test_rerun_and_record_edit_carry_the_markup_as_a_mask_is_carried(
    client: Client, sim: SimServer, hist: History
) -> None:
    first = client.edit("arrowed", _photo(), markup=markup_png(), model="gpt-image-2.6-flare")
    again = hist.rerun(first.record_id or "", client=client, quality="low")
    assert again.ok and sim.requests[-1]["quality"] == "low"
    assert sim.requests[0]["_parts"] == sim.requests[1]["_parts"]
    assert [s.role for s in hist[-1].sources] == ["image", "markup"]
    # A new edit of the result does not inherit the markup (it was drawn on the old picture).
    rec = hist.get(again.record_id or "")
    assert rec is not None
    child = rec.edit("now at night", client=client)
    assert [p["name"] for p in _parts(sim)] == ["image"]
    assert hist.get(child.record_id or "").parent == again.record_id  # type: ignore[union-attr]
    # The same markup used twice is stored once (content-addressed, like every input).
    assert len(list((hist.path / "sources").iterdir())) == 3


@pytest.mark.parametrize(
    "model", [m.id for m in MODELS.values() if m.listed and m.edit.can_edit and not m.edit.markup]
)
def test_markup_is_refused_before_the_network_where_the_registry_says_no(
    client: Client, sim: SimServer, hist: History, model: str
) -> None:
    with pytest.raises(ValidationError, match=r"markup applies to gpt-image-2\.6-flare and") as err:
        client.edit("x", _photo(), markup=markup_png(), model=model)
    assert err.value.field == "markup" and model in str(err.value)
    assert sim.request_count == 0 and len(hist) == 0


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (lambda: markup_png(128), "the same size as the first image \\(256x256\\); it is 128x128"),
        (lambda: image_bytes(256, 256, "PNG"), "must have an alpha channel \\(the annotations"),
        (lambda: image_bytes(256, 256, "JPEG"), "must be a PNG; it is JPEG"),
    ],
)
def test_each_markup_rule_is_refused_before_the_network(
    client: Client, sim: SimServer, layer: object, expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected) as err:
        client.edit("x", _photo(), markup=layer(), model="gpt-image-2.6-flare")  # type: ignore[operator]
    assert err.value.field == "markup"
    assert sim.request_count == 0


def test_markup_with_a_mask_is_refused(client: Client, sim: SimServer, hist: History) -> None:
    sky = cometnb.mask((256, 256), box=(0, 0, 256, 90))
    with pytest.raises(ValidationError, match="markup cannot be combined with a mask"):
        client.edit("x", _photo(), mask=sky, markup=markup_png(), model="gpt-image-2.6-flare")
    with pytest.raises(ValidationError, match="markup cannot be combined with a mask"):
        ImageRequest(
            "x", "gpt-image-2.6-flare", images=[_photo()], mask=sky, markup=markup_png()
        ).validate()
    assert sim.request_count == 0 and len(hist) == 0


def test_markup_without_an_input_image_is_refused() -> None:
    with pytest.raises(ValidationError, match="markup needs an input image"):
        ImageRequest("x", "gpt-image-2.6-flare", markup=markup_png()).validate()


def test_generate_many_mixes_markup_edits_and_generations(
    client: Client, sim: SimServer, hist: History
) -> None:
    requests = [
        ImageRequest(f"edit {i}", "gpt-image-2.6-flare", images=[_photo()], markup=markup_png())
        for i in range(3)
    ] + [ImageRequest("plain", "gpt-image-2")]
    results = client.generate_many(requests)
    assert all(r.ok for r in results)
    kinds = sorted((r.kind, tuple(s.role for s in r.sources)) for r in hist)
    assert kinds == [("edit", ("image", "markup"))] * 3 + [("generate", ())]


@pytest.mark.parametrize(
    ("model", "accepted"), [("gpt-image-2.6-flare", True), ("gpt-image-2", False)]
)
def test_the_simulator_takes_markup_on_2_6_only(sim: SimServer, model: str, accepted: bool) -> None:
    files = [
        ("image", ("photo.png", _photo(), "image/png")),
        ("markup", ("markup.png", markup_png(), "image/png")),
    ]
    reply = httpx.post(
        f"{sim.base_url}/images/edits",
        data={"model": model, "prompt": "follow the arrow"},
        files=files,
        headers={"Authorization": f"Bearer {FAKE_KEY}"},
        timeout=30,
    )
    if accepted:
        assert reply.status_code == 200 and reply.json()["data"][0]["b64_json"]
    else:
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["param"] == "markup" and "gpt-image-2 does not accept it" in error["message"]
    assert [p["name"] for p in _parts(sim)] == ["image", "markup"]


def test_the_simulator_refuses_markup_with_a_mask(sim: SimServer) -> None:
    files = [
        ("image", ("photo.png", _photo(), "image/png")),
        ("mask", ("mask.png", cometnb.mask((256, 256), box=(0, 0, 9, 9)), "image/png")),
        ("markup", ("markup.png", markup_png(), "image/png")),
    ]
    reply = httpx.post(
        f"{sim.base_url}/images/edits",
        data={"model": "gpt-image-2.6-flare", "prompt": "x"},
        files=files,
        headers={"Authorization": f"Bearer {FAKE_KEY}"},
        timeout=30,
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "markup"


def test_no_key_in_any_file_of_a_markup_history(sim: SimServer, tmp_path: Path) -> None:
    hist = History(tmp_path / "h")
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        c.edit("annotated", _photo(), markup=markup_png(), model="gpt-image-2.6-flare")
    hist.export(tmp_path / "out.zip")
    hist.export(tmp_path / "out.html")
    assert "markup" in (tmp_path / "out.html").read_text(encoding="utf-8")
    assert_no_key_in_tree(tmp_path)


def test_markup_edits_in_a_long_mixed_history(sim: SimServer, tmp_path: Path) -> None:
    """200 seeded records (failures, cancellations, edits with lineage, several models), then
    markup edits of seeded results: lineage, sources, find, rerun and both exports hold."""
    from _seed_history import seed

    folder = tmp_path / "h"
    ids = seed(folder, 200)
    hist = History(folder)
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        done = [r for r in hist if r.ok and r.images][-3:]
        for rec in done:
            first = rec.images[0]
            c.edit(
                f"annotate {rec.id}",
                f"@{rec.id}",
                markup=markup_png(first.width, height=first.height),
                model="gpt-image-2.6-flare",
                quality="low",
            )
        again = hist.rerun(hist[-1], client=c)
    assert len(hist) == 200 + 4 and again.ok
    marked = [r for r in hist.find(kind="edit") if any(s.role == "markup" for s in r.sources)]
    assert len(marked) == 4
    for rec, source in zip(marked[:3], done, strict=True):
        assert rec.parent == source.id and hist.lineage(rec)[-2].id == source.id
    assert [r.id for r in hist.find(text="annotate")][:3] == [r.id for r in marked[:3]]
    assert ids[0] == hist[0].id  # the seeded records are untouched
    hist.export(tmp_path / "out.html")
    hist.export(tmp_path / "out.zip")
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert page.count(">markup ") >= 4  # each markup edit's source strip captions it
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        stored = [n for n in archive.namelist() if n.startswith("sources/")]
    markup_files = {s.path.name for r in marked for s in r.sources if s.role == "markup" and s.path}
    assert markup_files and all(any(n.endswith(f) for n in stored) for f in markup_files)
    assert_no_key_in_tree(tmp_path)
