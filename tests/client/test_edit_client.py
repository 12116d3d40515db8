"""Edits end to end, over real HTTP against the simulator: every part arrives, every rule is
checked before the network, the same retry / billing / key rules as generations, and the
history keeps the inputs (once) and the lineage."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from _history_helpers import image_bytes
from conftest import FAKE_KEY, assert_no_key_in_tree
from PIL import Image

import cometnb
from cometnb import APIError, Client, ImageRequest, ValidationError
from cometnb._client.client import AsyncClient
from cometnb.history import History
from cometnb.sim import SimServer


def _photo(side: int = 256, color: tuple[int, int, int] = (220, 40, 40)) -> bytes:
    return image_bytes(side, side, "PNG", color)


def _parts(sim: SimServer) -> list[dict[str, object]]:
    parts = sim.requests[-1]["_parts"]
    assert isinstance(parts, list)
    return parts


def test_one_image_goes_as_one_image_part(client: Client, sim: SimServer, hist: History) -> None:
    gen = client.edit(
        "the same fox, at night", _photo(), model="gpt-image-1-mini", size="1024x1024"
    )
    assert gen.ok and gen.image.width == 1024
    sent = sim.requests[-1]
    assert sent["_path"] == "/v1/images/edits" and sent["prompt"] == "the same fox, at night"
    assert [(p["name"], p["filename"], p["content_type"]) for p in _parts(sim)] == [
        ("image", "image.png", "image/png")
    ]
    rec = hist[-1]
    assert rec.kind == "edit" and [s.role for s in rec.sources] == ["image"]
    assert rec.sources[0].path is not None and rec.sources[0].path.read_bytes() == _photo()
    usage = gen.usage or {}
    assert usage["input_tokens_details"]["image_tokens"] > 0


def test_several_images_every_part_arrives(client: Client, sim: SimServer, hist: History) -> None:
    inputs = [_photo(64, (i * 40, 10, 200)) for i in range(5)]
    gen = client.edit("combine these five", inputs, model="gpt-image-2")
    assert gen.ok
    parts = _parts(sim)
    assert [p["name"] for p in parts] == ["image[]"] * 5
    from cometnb._core.edit_inputs import resolve_source

    assert [p["sha256"] for p in parts] == [resolve_source(d).sha256 for d in inputs]
    assert len(hist[-1].sources) == 5


def test_mask_ok_and_the_masked_region_is_marked(client: Client, sim: SimServer) -> None:
    m = cometnb.mask((256, 256), box=(0, 0, 128, 128))
    gen = client.edit("fix only the sky", _photo(), mask=m, model="gpt-image-1", size="1024x1024")
    assert [p["name"] for p in _parts(sim)] == ["image", "mask"]
    with Image.open(io.BytesIO(gen.image.data)) as img:
        inside = img.convert("RGB").getpixel((300, 300))  # the mask's top-left quarter
        outside = img.convert("RGB").getpixel((800, 800))
    assert inside[0] > 150 and inside[2] > 150 and inside != outside


@pytest.mark.parametrize(
    ("make_mask", "expected"),
    [
        (lambda: image_bytes(256, 256, "PNG"), "must have an alpha channel"),
        (lambda: cometnb.mask((128, 128), box=(0, 0, 8, 8)), "same size as the first image"),
        (lambda: image_bytes(256, 256, "JPEG"), "must be a PNG"),
    ],
)
def test_each_mask_rule_is_refused_before_the_network(
    client: Client, sim: SimServer, hist: History, make_mask: object, expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        client.edit("x", _photo(), mask=make_mask(), model="gpt-image-1")  # type: ignore[operator]
    assert sim.request_count == 0 and len(hist) == 0


def test_fidelity_per_model(client: Client, sim: SimServer) -> None:
    assert client.edit("keep the face", _photo(), model="gpt-image-1.5", input_fidelity="high").ok
    assert sim.requests[-1]["input_fidelity"] == "high"
    with pytest.raises(ValidationError, match="input_fidelity applies to gpt-image-1 and"):
        client.edit("keep the face", _photo(), model="gpt-image-2", input_fidelity="high")
    assert sim.request_count == 1


def test_streaming_edit_partials(client: Client, sim: SimServer) -> None:
    partials: list[int] = []
    gen = client.edit(
        "streamed", _photo(), model="gpt-image-1-mini", partial_images=2,
        on_partial=lambda i, _d: partials.append(i),
    )  # fmt: skip
    assert gen.ok and partials == [0, 1]
    assert sim.requests[-1]["stream"] is True


def test_a_429_is_retried_and_every_part_sent_again(client: Client, sim: SimServer) -> None:
    sim.fault("429", retry_after=0)
    assert client.edit("retry me", [_photo(), _photo(64)], model="gpt-image-2").ok
    assert sim.request_count == 2
    first, second = sim.requests
    assert first["_parts"] == second["_parts"]


def test_a_read_timeout_is_not_retried(sim: SimServer, hist: History) -> None:
    sim.fault("hang", seconds=3)
    with (
        Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, timeout=0.5) as c,
        pytest.raises(APIError, match="billed"),
    ):
        c.edit("slow", _photo(), model="gpt-image-1-mini")
    assert sim.request_count == 1
    assert hist[-1].status == "error" and hist[-1].kind == "edit"


def test_the_key_is_in_no_file_written_logs_included(sim: SimServer, tmp_path: Path) -> None:
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    loggers = [logging.getLogger(n) for n in ("cometnb", "httpx", "httpcore")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        hist = History(tmp_path / "h")
        with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            c.edit("logged", [_photo(), _photo(64)], mask=None, model="gpt-image-2")
            sim.fault("500")
            with pytest.raises(APIError):
                c.edit("fails", _photo(), model="gpt-image-2")
        hist.export(tmp_path / "out.zip")
        hist.export(tmp_path / "out.html")
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
            lg.setLevel(logging.NOTSET)
        handler.close()
    assert log_file.stat().st_size > 0
    assert_no_key_in_tree(tmp_path)


def test_seedream_references_go_as_data_uris(client: Client, sim: SimServer, hist: History) -> None:
    gen = client.edit(
        "the same bottle on a beach", [_photo(64), _photo(32)],
        model="doubao-seedream-4-0-250828", size="2K", watermark=False,
    )  # fmt: skip
    sent = sim.requests[-1]
    assert sent["_path"] == "/v1/images/generations"
    assert sent["_references"] == 2 and sent["watermark"] is False
    assert gen.image.width == 2048 and sim.downloads == 1
    assert hist[-1].kind == "edit" and len(hist[-1].sources) == 2


def test_seedream_validates_like_the_others(client: Client, sim: SimServer) -> None:
    with pytest.raises(ValidationError, match="at most 14 input images; got 15"):
        client.edit("x", [_photo(16)] * 15, model="doubao-seedream-4-5-251128")
    with pytest.raises(ValidationError, match="takes no mask"):
        client.edit("x", _photo(), mask=cometnb.mask((256, 256), box=(0, 0, 9, 9)),
                    model="doubao-seedream-4-5-251128")  # fmt: skip
    with pytest.raises(ValidationError, match="watermark"):
        client.generate("x", model="gpt-image-2", watermark=True)
    assert sim.request_count == 0


def test_lineage_through_the_history(client: Client, sim: SimServer, hist: History) -> None:
    base = client.generate("a red fox", model="gpt-image-1-mini")
    night = client.edit("at night", "@-1", model="gpt-image-1-mini")
    snow = hist.get(night.record_id or "").edit("now in snow", client=client)  # type: ignore[union-attr]
    rec = hist.get(snow.record_id or "")
    assert rec is not None and rec.parent == night.record_id
    assert [r.id for r in hist.lineage(rec)] == [base.record_id, night.record_id, rec.id]
    assert [r.id for r in hist.find(kind="edit")] == [night.record_id, rec.id]
    assert [r.id for r in hist.find(kind="generate")] == [base.record_id]
    # The same input used twice is stored once.
    client.edit("again", "@-1", model="gpt-image-1-mini")
    client.edit("and again", f"@{rec.id}", model="gpt-image-1-mini")
    assert len(list((hist.path / "sources").iterdir())) == 3


def test_rerun_of_an_edit_sends_the_inputs_again(
    client: Client, sim: SimServer, hist: History
) -> None:
    m = cometnb.mask((256, 256), box=(0, 0, 64, 64))
    first = client.edit("sky", _photo(), mask=m, model="gpt-image-1")
    again = hist.rerun(first.record_id or "", client=client, quality="low")
    assert again.ok and sim.requests[-1]["quality"] == "low"
    assert sim.requests[0]["_parts"] == sim.requests[1]["_parts"]
    assert hist[-1].origin == first.record_id and hist[-1].kind == "edit"


def test_generate_many_mixes_edits_and_generations(
    client: Client, sim: SimServer, hist: History
) -> None:
    photo = _photo()
    gens = client.generate_many(
        [
            ImageRequest("plain", model="gpt-image-1-mini"),
            ImageRequest("edited", model="gpt-image-1-mini", images=[photo]),
            {"prompt": "edited too", "model": "gpt-image-2", "images": [photo, photo]},
        ]
    )
    assert [g.ok for g in gens] == [True, True, True]
    kinds = sorted(hist.get(g.record_id or "").kind for g in gens)  # type: ignore[union-attr]
    assert kinds == ["edit", "edit", "generate"]
    paths = sorted(str(r.get("_path", "/v1/images/generations")) for r in sim.requests)
    assert paths == ["/v1/images/edits", "/v1/images/edits", "/v1/images/generations"]


def test_async_edit(sim: SimServer, hist: History) -> None:
    async def go() -> None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            gen = await c.aedit("async edit", [_photo(), _photo(64)], model="gpt-image-2")
            assert gen.ok

    asyncio.run(go())
    assert [p["name"] for p in _parts(sim)] == ["image[]", "image[]"]


def test_the_simulator_refuses_what_the_client_would(sim: SimServer) -> None:
    import httpx

    files = [("image", ("a.png", _photo(), "image/png"))]
    data = {"model": "dall-e-2", "prompt": "x", "input_fidelity": "high"}
    headers = {"Authorization": f"Bearer {FAKE_KEY}"}
    reply = httpx.post(f"{sim.base_url}/images/edits", data=data, files=files, headers=headers)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "input_fidelity" and "dall-e-2 does not accept it" in error["message"]
    octet = [("image", ("a", _photo(), "application/octet-stream"))]
    reply = httpx.post(
        f"{sim.base_url}/images/edits", data=data | {"model": "gpt-image-1"}, files=octet,
        headers=headers,
    )  # fmt: skip
    assert reply.status_code == 400 and "unsupported mimetype" in reply.json()["error"]["message"]


def test_a_mask_of_4_mb_or_more_is_refused_before_the_network(
    client: Client, sim: SimServer, hist: History
) -> None:
    import os

    side = 1100  # incompressible RGBA noise: a PNG of about 4.6 MB
    noise = Image.frombytes("RGBA", (side, side), os.urandom(side * side * 4))
    buf = io.BytesIO()
    noise.save(buf, "PNG", compress_level=1)
    assert buf.tell() >= 4 * 1024 * 1024
    with pytest.raises(ValidationError, match=r"must be under 4 MB; it is 4\.\d MB \("):
        client.edit("x", image_bytes(side, side), mask=buf.getvalue(), model="gpt-image-1")
    assert sim.request_count == 0 and len(hist) == 0


def test_an_empty_image_list_is_refused_before_the_network(
    client: Client, sim: SimServer, hist: History
) -> None:
    # It used to go out as a plain (billed) generation to /v1/images/generations.
    refused = "an edit needs at least one input image"
    with pytest.raises(ValidationError, match=refused):
        client.edit("the same fox, at night", [], model="gpt-image-1")
    with pytest.raises(ValidationError, match=refused):
        client.edit("x", (), mask=cometnb.mask((1024, 1024), box=(0, 0, 10, 10)))
    with pytest.raises(ValidationError, match=refused):
        ImageRequest("the same fox", "gpt-image-1", images=[])
    plain = ImageRequest("the same fox", "gpt-image-1")
    with pytest.raises(ValidationError, match=refused):
        plain.with_overrides(images=[])
    assert not plain.with_overrides(size="1024x1024").is_edit  # not given: still a generation

    async def go() -> None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            with pytest.raises(ValidationError, match=refused):
                await c.aedit("async edit", [], model="gpt-image-2")

    asyncio.run(go())
    assert sim.request_count == 0 and len(hist) == 0
