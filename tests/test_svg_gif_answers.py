"""SVG and GIF answers of gpt-image-2.6 kept and shown safely (issue 23 point 3), end to end
against the simulator: the server's bytes kept exactly; every HTML the package writes (cards,
record and history views, comparisons, the gallery export, the cell's output, the panel)
scanned for a script, an event handler or SVG markup, inline or inside a data URI; a GIF card
that animates; the rules refused before the network."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FAKE_KEY, new_magic_shell
from IPython.core.displaypub import CapturingDisplayPublisher
from PIL import Image

from cometnb._client.client import Client
from cometnb._core import settings as _settings
from cometnb._core.errors import ValidationError
from cometnb._core.generations import Generation
from cometnb._core.images import sniff_format
from cometnb._storage.folder import History
from cometnb._storage.preview_queue import previews
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(120)

MODEL = "gpt-image-2.6-flare"
SVG_PROMPT = "a flat vector logo of a lighthouse, <b>bold</b> & simple"
GIF_PROMPT = "a spinning top, looping"
DATA_URI = re.compile(r"data:([a-z/+.-]+);base64,([A-Za-z0-9+/=]+)")


def assert_inert(html: str, where: str) -> int:
    """No script, no event handler, no SVG markup from the server: neither in the HTML nor in
    any data URI it embeds (an SVG there is base64). Returns how many images it embeds."""
    lowered = html.lower()
    assert "<script" not in lowered, where
    assert "onload" not in lowered and "<b>bold" not in lowered, where  # text is escaped
    assert "<svg" not in lowered and "svg+xml" not in lowered, where
    assert "svg script ran" not in html and "svg onload ran" not in html, where
    embedded = DATA_URI.findall(html)
    for mime, payload in embedded:
        data = base64.b64decode(payload)
        assert sniff_format(data) in ("png", "jpeg", "webp", "gif"), (where, mime)
        assert b"<svg" not in data and b"<script" not in data, where
    return len(embedded)


def answer_bytes(sim: SimServer, body: dict[str, Any]) -> bytes:
    """The image bytes the simulator sends for ``body`` (it draws the same bytes each time)."""
    r = httpx.post(
        f"{sim.base_url}/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {FAKE_KEY}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return base64.b64decode(r.json()["data"][0]["b64_json"])


def frames_of(data: bytes) -> list[int]:
    """Each frame's duration in ms (one item per frame)."""
    with Image.open(io.BytesIO(data)) as img:
        found = []
        for k in range(getattr(img, "n_frames", 1)):
            img.seek(k)
            img.load()
            found.append(int(img.info.get("duration", 0)))
        return found


@pytest.fixture
def hostile(sim: SimServer) -> SimServer:
    sim.svg = "hostile"
    return sim


@pytest.fixture
def made(hostile: SimServer, client: Client, hist: History) -> dict[str, Generation]:
    """An SVG (carrying a script, onload and a file reference) and a 5-frame GIF, generated."""
    svg = client.generate(SVG_PROMPT, model=MODEL, output_format="svg", quality="low")
    gif = client.generate(
        GIF_PROMPT,
        model=MODEL,
        output_format="gif",
        frame_count=5,
        frame_duration_ms=60,
        size="1024x1024",
        quality="low",
    )
    assert previews().drain(30.0)
    return {"svg": svg, "gif": gif}


# --- bytes --------------------------------------------------------------------------------


def test_the_svg_is_kept_byte_for_byte(
    hostile: SimServer, made: dict[str, Generation], hist: History
) -> None:
    sent = answer_bytes(hostile, {"model": MODEL, "prompt": SVG_PROMPT, "output_format": "svg",
                                  "quality": "low"})  # fmt: skip
    assert b"<script>" in sent and b"onload=" in sent  # the hostile variant
    rec = hist.get(made["svg"].record_id)
    assert rec is not None and rec.status == "ok"
    image = rec.images[0]
    assert image.format == "svg" and (image.width, image.height) == (1024, 1024)
    assert image.path is not None and image.path.suffix == ".svg"
    assert image.path.read_bytes() == sent == image.data
    # Its preview is a raster file of its own, never the SVG itself.
    assert image.preview_path is not None and image.preview_path != image.path
    preview = image.preview_path.read_bytes()
    assert sniff_format(preview) in ("png", "webp") and b"<svg" not in preview
    assert rec.request["output_format"] == "svg"


def test_the_gif_is_kept_byte_for_byte_with_its_frames(
    hostile: SimServer, made: dict[str, Generation], hist: History
) -> None:
    body = {"model": MODEL, "prompt": GIF_PROMPT, "output_format": "gif", "frame_count": 5,
            "frame_duration_ms": 60, "size": "1024x1024", "quality": "low"}  # fmt: skip
    sent = answer_bytes(hostile, body)
    rec = hist.get(made["gif"].record_id)
    assert rec is not None and rec.images[0].format == "gif"
    assert rec.images[0].data == sent
    assert frames_of(sent) == [60] * 5
    assert {k: rec.request[k] for k in ("frame_count", "frame_duration_ms")} == {
        "frame_count": 5,
        "frame_duration_ms": 60,
    }
    sent_body = hostile.requests[-1]
    assert sent_body["frame_count"] == 5 and sent_body["frame_duration_ms"] == 60


# --- the GIF card animates ------------------------------------------------------------------


def test_a_gif_card_animates_within_the_preview_cap(made: dict[str, Generation]) -> None:
    html = made["gif"]._repr_html_()
    assert assert_inert(html, "gif card") == 1
    _mime, payload = DATA_URI.findall(html)[0]
    data = base64.b64decode(payload)
    assert frames_of(data) == [60] * 5  # every frame, every duration
    with Image.open(io.BytesIO(data)) as img:
        assert max(img.size) <= _settings.active().thumbnail_px
    assert len(data) < len(made["gif"].image.data)


# --- no HTML carries the SVG ------------------------------------------------------------------


def test_cards_views_and_exports_never_carry_the_svg(
    made: dict[str, Generation], hist: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _seed_history

    monkeypatch.chdir(hist.path.parent)  # as a notebook beside its history: relative links

    _seed_history.seed(hist.path, 220)  # a real history around them: 220 mixed records
    svg_rec, gif_rec = hist.get(made["svg"].record_id), hist.get(made["gif"].record_id)
    assert svg_rec is not None and gif_rec is not None
    card = made["svg"]._repr_html_()
    assert assert_inert(card, "svg card") == 1
    # Both links to the original download it: opened as a page, its script would run.
    assert re.search(r'<a href="hist/images/[^"]+\.svg" download', card)
    assert re.search(r'<a class="cometnb-file-uri" href="file://[^"]+\.svg" download', card)
    pages = {
        "image": made["svg"].image._repr_mimebundle_()["text/html"],
        "record": svg_rec._repr_html_(),
        "gif record": gif_rec._repr_html_(),
        "history": hist._repr_html_(),
        "compare": hist.compare(svg_rec, gif_rec)._repr_html_(),
    }
    for where, html in pages.items():
        assert assert_inert(html, where) >= 1, where
    page = hist.export(tmp_path / "gallery.html").read_text()
    images = sum(len(r.images) for r in hist.find(status="ok"))
    assert images > 150 and assert_inert(page, "gallery export") >= images
    assert svg_rec.images[0].path is not None and svg_rec.images[0].path.name in page
    exported = [f for f in (tmp_path / "gallery.html").parent.iterdir() if f.suffix == ".html"]
    assert exported == [tmp_path / "gallery.html"]


class _Recorder(CapturingDisplayPublisher):
    def htmls(self) -> list[str]:
        return [o["data"].get("text/html", "") for o in self.outputs]


@pytest.fixture
def cell_shell(
    hostile: SimServer, history_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    shell = new_magic_shell(base_url=hostile.base_url, history_dir=str(history_dir))
    _settings.set_session_key(FAKE_KEY)
    recorder = _Recorder()
    monkeypatch.setattr(shell, "display_pub", recorder)
    shell.magics_manager.registry["CometImg"].engine.rich = True  # as inside a kernel
    yield shell


def test_the_cell_output_never_carries_the_svg(cell_shell: Any, hostile: SimServer) -> None:
    result = cell_shell.run_cell(f"%%cometimg -m {MODEL} -f svg -q low\n{SVG_PROMPT}")
    assert result.success, result.error_in_exec
    gen = result.result
    assert isinstance(gen, Generation) and gen.image.format == "svg"
    shown = cell_shell.display_pub.htmls()
    assert shown and sum(assert_inert(h, "cell output") for h in shown) >= 1
    result = cell_shell.run_cell(f"%%cometimg -m {MODEL} -f gif --frames 3 --frame-ms 80\ntop")
    assert result.success, result.error_in_exec
    assert hostile.requests[-1]["frame_count"] == 3
    card = cell_shell.display_pub.htmls()[-1]
    assert_inert(card, "gif cell")
    assert frames_of(base64.b64decode(DATA_URI.findall(card)[0][1])) == [80] * 3


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ("-f svg -n 2", "output_format"),
        ("-f svg --partial 1", "output_format"),
        ("-f gif --partial 1", "output_format"),
        ("-f gif --frames 1", "frame_count"),
        ("-f gif --frame-ms 5", "frame_duration_ms"),
        ("-f gif --compression 50", "output_compression"),
        ("-f png --frames 4", "frame_count"),
    ],
)
def test_rules_refused_before_the_network(
    cell_shell: Any, hostile: SimServer, options: str, field: str
) -> None:
    before = hostile.request_count
    result = cell_shell.run_cell(f"%%cometimg -m {MODEL} {options}\na logo")
    assert isinstance(result.error_in_exec, ValidationError)
    assert result.error_in_exec.field == field
    assert hostile.request_count == before


def test_a_gif_edit_with_a_mask_is_refused_before_the_network(
    made: dict[str, Generation], client: Client, hostile: SimServer
) -> None:
    from cometnb._core.edit_inputs import mask

    source = made["gif"].image
    before = hostile.request_count
    with pytest.raises(ValidationError, match="output_format=gif takes no mask"):
        client.edit(
            "the same at night",
            Image.open(io.BytesIO(source.data)).convert("RGB"),
            mask=mask(Image.open(io.BytesIO(source.data)).convert("RGB"), box=(0, 0, 64, 64)),
            model=MODEL,
            output_format="gif",
        )
    assert hostile.request_count == before


def test_the_panel_never_carries_the_svg(
    hostile: SimServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _seed_history
    import ipywidgets as W

    from cometnb.widget import panel

    _seed_history.seed(isolated_env, 220)
    _settings.active().base_url = hostile.base_url
    _settings.set_session_key(FAKE_KEY)
    p = panel()
    try:
        p.prompt.value = SVG_PROMPT
        p.model.value = MODEL
        p.output_format.value = "svg"
        p.generate_button.click()
        assert p.wait(60.0)
        p.prompt.value = GIF_PROMPT
        p.output_format.value = "gif"
        p.generate_button.click()
        assert p.wait(60.0)
        made = History(isolated_env).find(model=MODEL)
        assert sorted(r.images[0].format for r in made) == ["gif", "svg"], p.message.value
        p.history_browser.refresh()

        def htmls(widget: W.Widget) -> Iterator[str]:
            if isinstance(widget, (W.HTML, W.HTMLMath)):
                yield str(widget.value)
            for child in getattr(widget, "children", ()):
                yield from htmls(child)

        found = list(htmls(p))
        embedded = sum(assert_inert(h, "panel widget") for h in found)
        assert embedded >= 2  # the two result cards, at least
        assert assert_inert(p.static_html(), "panel summary") >= 2
    finally:
        p.cancel()
        p.wait(30.0)
        p.close()


def test_an_svg_gives_pixels_only_through_the_renderer(made: dict[str, Generation]) -> None:
    image = made["svg"].image
    pixels = image.pil()
    assert pixels.size == (1024, 1024)
    # The SIMULATED plate of the drawing (sim/images.py): red, drawn by resvg.
    red, green, blue, *_ = pixels.getpixel((512, 1024 - 1024 // 5 + 10))
    assert red > 180 and green < 40 and blue < 40
    preview, mime = image.preview(256)
    assert mime in ("image/png", "image/webp") and b"<svg" not in preview


# --- an SVG cometnb cannot read ---------------------------------------------------------------

UNREADABLE = [
    # cut off mid-document, as a truncated answer would be
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect onload="alert(1)"/><script>alert(2)</script',
    # an entity declaration (never expanded)
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aa">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg">&a;<script>alert(3)</script></svg>',
]


@pytest.mark.parametrize("data", UNREADABLE, ids=["truncated", "entities"])
def test_a_billed_svg_cometnb_cannot_read_is_kept_and_never_shown(
    data: bytes, hist: History, tmp_path: Path
) -> None:
    """The answer was billed: its bytes go to the history exactly, and no view, card or export
    draws or embeds them (no size is known, so there is no preview either)."""

    def answer(request: httpx.Request) -> httpx.Response:
        usage = {"input_tokens": 12, "output_tokens": 300, "total_tokens": 312}
        body = {"created": 1, "data": [{"b64_json": base64.b64encode(data).decode()}]}
        return httpx.Response(200, json={**body, "usage": usage})

    with Client(
        api_key=FAKE_KEY,
        base_url="http://api.test/v1",
        history=hist,
        transport=httpx.MockTransport(answer),
    ) as client:
        gen = client.generate(SVG_PROMPT, model=MODEL, output_format="svg", quality="low")
    assert previews().drain(30.0)
    rec = hist.get(gen.record_id)
    assert gen.ok and rec.status == "ok" and rec.images[0].format == "svg"
    assert rec.images[0].path.read_bytes() == data
    assert gen.cost.usd is not None and gen.cost.usd > 0
    assert_inert(gen._repr_html_(), "card")
    assert_inert(rec._repr_html_(), "record")
    assert_inert(hist._repr_html_(), "history")
    page = hist.export(tmp_path / "gallery.html", [rec])
    assert_inert(page.read_text(encoding="utf-8"), "export")
