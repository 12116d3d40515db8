"""How an edit is drawn: its inputs, an arrow, then the result, in one row (card, comparison,
HTML gallery); a mask over a checkerboard, so its transparent (edited) area can be seen."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from _history_helpers import api_result, image_bytes
from PIL import Image

from cometnb._core.edit_inputs import EditBody, mask, resolve_source
from cometnb._views.cards import record_html
from cometnb._views.common import mask_preview, sources_html
from cometnb._views.gallery import gallery_html
from cometnb._views.history import compare_html
from cometnb.history import History

_CHECKS = {(255, 255, 255), (204, 204, 204)}


@pytest.fixture
def edited(tmp_path: Path) -> History:
    h = History(tmp_path / "h")
    base = h.record_success(
        {"model": "gpt-image-1", "prompt": "a red fox in snow"}, api_result(), elapsed_s=0.1
    )
    photo = resolve_source(base)
    sky = resolve_source(mask((photo.width, photo.height), box=(0, 0, photo.width, 40)))
    body = EditBody({"model": "gpt-image-1", "prompt": "fix the sky"}, [photo], sky)
    h.record_success(body, api_result(), elapsed_s=0.1)
    return h


def _decoded(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_a_mask_is_drawn_over_a_checkerboard() -> None:
    drawn = Image.open(io.BytesIO(mask_preview(mask((256, 128), box=(0, 0, 128, 128)), 96)))
    assert drawn.size == (96, 48)  # fits px, keeps the aspect
    pixels = drawn.convert("RGB")
    # Away from the edge between the halves, which resizing blends.
    edited = {pixels.getpixel((x, y)) for x in range(0, 45) for y in range(48)}
    kept = {pixels.getpixel((x, y)) for x in range(51, 96) for y in range(48)}
    assert edited == _CHECKS  # the transparent half shows the checks, both colours
    assert kept == {(0, 0, 0)}  # the kept half stays as cometnb.mask draws it


def _in_order(html: str, *markers: str) -> None:
    at = [html.index(m) for m in markers]
    assert at == sorted(at), markers


@pytest.mark.parametrize("view", ["card", "compare", "gallery"])
def test_the_arrow_points_from_the_inputs_at_the_result(edited: History, view: str) -> None:
    first, second = edited[0], edited[-1]
    html = {
        "card": lambda: record_html(second),
        "compare": lambda: compare_html([first, second]),
        "gallery": lambda: gallery_html([first, second]),
    }[view]()
    pair = html[html.index('class="cometnb-edit-pair"') :]
    # One row that never wraps: inputs, the arrow, then the result image.
    assert "flex-wrap:nowrap" in pair[: pair.index(">")]
    _in_order(pair, 'class="cometnb-sources"', 'class="cometnb-arrow"', "cometnb-edit-output")
    output = pair[pair.index("cometnb-edit-output") :]
    assert "<img" in output and "fix the sky" not in pair[: pair.index("cometnb-edit-output")]
    assert html.count('class="cometnb-edit-pair"') == 1  # the plain generation has none


def test_the_mask_thumbnail_in_a_card_shows_its_edited_area(edited: History) -> None:
    html = record_html(edited[-1])
    figures = re.findall(r'<figure class="cometnb-source".*?</figure>', html)
    assert len(figures) == 2 and "mask: checks = edited area" in figures[1]
    (uri,) = re.findall(r'src="(data:image/[^"]+)"', figures[1])
    drawn = _decoded(uri)
    top = {drawn.getpixel((x, 1)) for x in range(drawn.width)}
    bottom = {drawn.getpixel((x, drawn.height - 1)) for x in range(drawn.width)}
    assert top == _CHECKS and bottom == {(0, 0, 0)}


def test_many_inputs_sit_in_a_grid_and_a_grid_header_points_down() -> None:
    inputs = [resolve_source(image_bytes(32, 32, "PNG", (i * 20, 0, 0))) for i in range(9)]
    strip = sources_html(inputs, arrow="↓")
    assert "grid-template-columns:repeat(3,auto)" in strip
    assert strip.count("<figure") == 9 and ">↓</span>" in strip
