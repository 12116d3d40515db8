"""Cells at real sizes: ``-n 3`` as a row of thumbnails, ``--each-line`` as tiles, file names
that stay on one line, and errors whose whole text is one click away."""

from __future__ import annotations

import base64
import html as html_lib
import io
import re

from _history_helpers import api_result, body, image_bytes
from PIL import Image

from cometnb._core.errors import APIError
from cometnb._core.generations import Generation, Grid, GridCell, ImageRequest
from cometnb._views.cards import TILE_PX, generation_html, record_html
from cometnb._views.common import error_box
from cometnb._views.grid import grid_html
from cometnb.history import History

# What a real refusal looks like: the advice comes last, after the part an excerpt keeps.
ADVICE_ERROR = (
    "Invalid value for 'size': '1792x1024' is not supported by gpt-image-1-mini. Supported "
    "values are 1024x1024, 1536x1024, 1024x1536 and auto. The request was refused before any "
    "image was generated, so nothing was billed. To keep this size, pass -m dall-e-3, which "
    "accepts 1792x1024; otherwise pass -s 1536x1024 for the nearest landscape size."
)


def preview_sizes(html: str) -> list[tuple[int, int]]:
    sizes = []
    for uri in re.findall(r'src="data:image/[a-z]+;base64,([^"]+)"', html):
        with Image.open(io.BytesIO(base64.b64decode(uri))) as img:
            sizes.append(img.size)
    return sizes


def test_n3_is_a_wrapping_row_of_thumbnails_not_a_column(hist: History) -> None:
    pics = [image_bytes(1024, 1024, color=(30 * i, 90, 160)) for i in range(3)]
    rec = hist.record_success(body("three foxes", n=3), api_result(*pics), elapsed_s=2.0)
    html = record_html(rec)
    (row,) = re.findall(r'<div class="cometnb-images" style="([^"]*)"', html)
    assert "flex-wrap:wrap" in row
    assert preview_sizes(html) == [(TILE_PX, TILE_PX)] * 3  # small previews, inline
    width = int(re.search(r'class="cometnb-card" style="[^"]*max-width:(\d+)px', html)[1])
    assert 3 * TILE_PX <= width < 2 * 512  # three tiles side by side, not 3 × 512 px
    single = hist.record_success(body("one fox"), api_result(pics[0]), elapsed_s=1.0)
    assert preview_sizes(record_html(single)) == [(512, 512)]  # one image keeps its size


def test_long_file_names_stay_on_one_line_with_the_name_on_hover(hist: History) -> None:
    prompt = "an extremely detailed isometric illustration of a lighthouse " * 4
    rec = hist.record_success(
        body(prompt, n=2), api_result(image_bytes(), image_bytes()), elapsed_s=1.0
    )
    html = generation_html(rec.to_generation())
    names = [img.path.name for img in rec.images if img.path]
    assert len(names) == 2 and all(len(n) > 60 for n in names)
    captions = re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", html)
    assert len(captions) == 2
    for caption, name in zip(captions, names, strict=True):
        line = re.search(r'<div title="[^"]*" style="([^"]*)"', caption)[1]
        assert "white-space:nowrap" in line and "min-width:100%" in line  # never wraps or widens
        shrinking = re.findall(r'<span style="([^"]*)">(.*?)</span>', caption)
        cut = [inner for style, inner in shrinking if "text-overflow:ellipsis" in style]
        assert len(cut) == 1 and name in cut[0]  # the name is what shrinks, with "…"
        assert f'title="png 64×64 · {name}"' in caption  # the whole name on hover
        assert 'class="cometnb-file-uri"' not in cut[0]  # the file:// link always shows


def test_a_long_error_shows_an_excerpt_and_the_whole_text_one_click_away() -> None:
    html = error_box(ADVICE_ERROR, 200)
    summary, rest = re.fullmatch(
        r"<details[^>]*><summary[^>]*>(.*?)</summary>(.*)</details>", html
    ).groups()
    assert "pass -s 1536x1024" not in summary and "show the full error" in summary
    assert ADVICE_ERROR.replace("'", "&#x27;") in rest
    excerpt = html_lib.unescape(summary.split(" <span")[0])
    assert excerpt.endswith("…") and ADVICE_ERROR.startswith(excerpt[:-1])
    assert ADVICE_ERROR[len(excerpt) - 1] == " "  # cut between words
    short = error_box("HTTP 500: try again later", 200)
    assert "<details" not in short and "try again later" in short


def test_each_line_grid_with_a_failed_cell_keeps_its_advice_reachable(hist: History) -> None:
    prompts = [f"line {i}: a lighthouse at dusk, style {i}" for i in range(7)]
    cells = []
    for i, prompt in enumerate(prompts):
        req = ImageRequest(prompt, "gpt-image-1-mini", size="1024x1024")
        if i == 3:
            gen = Generation(
                req.to_body(), error=APIError(ADVICE_ERROR, status=400), status="error"
            )
        else:
            gen = hist.record_success(req.to_body(), api_result(), elapsed_s=1.0).to_generation()
        cells.append(GridCell({"prompt": prompt}, req, gen))
    html = grid_html(Grid({"prompt": prompts}, cells))
    tiles = html.split('class="cometnb-grid-tile"')[1:]
    assert len(tiles) == 7 and "<table" not in html
    assert "<details" in tiles[3] and "pass -s 1536x1024" in tiles[3].split("</summary>")[1]
    assert all("<details" not in t for i, t in enumerate(tiles) if i != 3)
    assert "7 requests · 6/7 done · 1 failed" in html


def test_edit_source_labels_wrap_instead_of_cutting_mid_word(hist: History) -> None:
    """A grid of edits names its inputs above the cells: "from generation <id>" wraps under
    the thumbnail (it read "from generatio…"), the whole label and record on hover."""
    from cometnb._core.edit_inputs import resolve_source
    from cometnb._views.common import sources_html

    base = hist.record_success(body("a lighthouse"), api_result(), elapsed_s=0.1)
    gen = base.to_generation()
    html = sources_html([resolve_source(gen)])
    (caption,) = re.findall(r'<figcaption style="([^"]*)">([^<]*)</figcaption>', html)
    style, text = caption
    assert text == f"from generation {base.id}"  # whole, not "from generatio…"
    assert "overflow-wrap:anywhere" in style and "-webkit-line-clamp:3" in style
    assert "nowrap" not in style
    assert f'title="generation {base.id} ({base.id})"' in html
