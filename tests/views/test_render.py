"""HTML views: escaping everywhere, light previews, labelled grids, comparisons, history table."""

from __future__ import annotations

import base64
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from _history_helpers import api_result, body, image_bytes, noisy_png

from cometnb._core.errors import APIError, CometError
from cometnb._core.generations import GeneratedImage, Generation, Grid, GridCell, ImageRequest
from cometnb._storage.records import split_settings
from cometnb._views.cards import generation_html, image_html, record_html
from cometnb._views.common import THUMB_PX
from cometnb._views.gallery import gallery_html
from cometnb._views.grid import grid_html
from cometnb._views.history import compare_html, history_html
from cometnb.history import History, Record

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def no_live_markup(html: str) -> None:
    """Nothing a user typed became markup: no script element, no injected img/handler."""
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and 'onerror="' not in html


def data_uris(html: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r'src="data:image/[a-z]+;base64,([^"]+)"', html)
    ]


@pytest.fixture
def evil(hist: History) -> Record:
    return hist.record_success(
        body(EVIL, quality=EVIL),
        api_result(revised=EVIL, size="64x64"),
        elapsed_s=1.0,
        tags=[EVIL],
        origin=EVIL,
    )


@pytest.fixture
def failed(hist: History) -> Record:
    return hist.record_failure(body(EVIL), APIError(f"refused: {EVIL}", status=400), elapsed_s=1)


def test_every_view_escapes_user_text(hist: History, evil: Record, failed: Record) -> None:
    gen = evil.to_generation()
    grid = Grid({"prompt": [EVIL]}, [GridCell({"prompt": EVIL}, ImageRequest(EVIL), gen)])
    views = {
        "image": image_html(gen.image),
        "generation": generation_html(gen),
        "failed generation": generation_html(failed.to_generation()),
        "grid": grid_html(grid, {0: EVIL}),
        "record": record_html(evil),
        "failed record": record_html(failed),
        "history": history_html([evil, failed]),
        "compare": compare_html([evil, failed]),
        "gallery": gallery_html([evil, failed], title=EVIL),
    }
    for name, html in views.items():
        no_live_markup(html)
        assert "&lt;script&gt;" in html, name


def test_generation_card_shows_preview_caption_and_link(
    hist: History, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the history lies below the working directory: linkable
    original = noisy_png(1024)
    rec = hist.record_success(
        body(quality="high", size="1024x1024"),
        api_result(original, usage={"total_tokens": 4160}, size="1024x1024", quality="high"),
        elapsed_s=42.25,
    )
    html = generation_html(rec.to_generation())
    (preview,) = data_uris(html)
    assert len(preview) < len(original) / 10  # a preview, never the multi-MB original
    for text in ("gpt-image-2", "1024x1024", "high", "42.2 s", "4160 tokens"):
        assert text in html
    path = rec.images[0].path
    assert path is not None and f'href="hist/images/{path.name}"' in html
    assert "synthetic" not in html and "cometnb-card" in html


def test_in_memory_and_synthetic_results(monkeypatch: pytest.MonkeyPatch) -> None:
    img = GeneratedImage(None, "png", 64, 64, data=image_bytes())
    gen = Generation(body(), images=[img], elapsed_s=1.0, synthetic=True)
    html = generation_html(gen)
    assert "synthetic (simulator)" in html and "not stored" in html
    assert data_uris(html)[0] == img.data  # small enough to embed as is


def test_paths_outside_the_working_directory_get_only_the_absolute_link(evil: Record) -> None:
    path = evil.images[0].path
    assert path is not None
    html = image_html(evil.images[0])
    assert "<code" in html
    assert re.findall(r'href="([^"]+)"', html) == [path.resolve().as_uri()]


def test_originals_are_linked_relative_and_absolute(
    hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name opens the original in Jupyter (relative to the notebook's folder); the
    ``file`` link reaches it from an nbconvert page moved anywhere on this machine."""
    rec = hist.record_success(body("a fox"), api_result(size="64x64"), elapsed_s=1.0)
    path = rec.images[0].path
    assert path is not None
    monkeypatch.chdir(hist.path.parent)
    links = re.findall(r'href="([^"]+)"', image_html(rec.images[0]))
    assert links == [f"{hist.path.name}/images/{path.name}", path.resolve().as_uri()]
    assert all(not link.startswith("data:") for link in links)  # the original is not embedded


def test_failed_generation_shows_an_error_box() -> None:
    gen = Generation(body(), error=CometError("the server said no"), status="error")
    html = generation_html(gen)
    assert "the server said no" in html and "#fdecea" in html and "error" in html


def test_missing_file_shows_a_placeholder(evil: Record) -> None:
    img = evil.images[0]
    assert img.path is not None
    img.path.unlink()
    if img.preview_path and img.preview_path.exists():
        img.preview_path.unlink()
    assert "image file missing" in image_html(img)


# --- grids -----------------------------------------------------------------------------------


def make_grid(hist: History, axes: dict[str, list[Any]], done: int | None = None) -> Grid:
    cells = []
    names = list(axes)
    for i, values in enumerate(itertools.product(*axes.values())):
        coords = dict(zip(names, values, strict=True))
        fields = {k: v for k, v in coords.items() if k not in ("prompt", "model")}
        req = ImageRequest(coords.get("prompt", "a fox"), coords.get("model"), **fields)
        gen = None
        if done is None or i < done:
            rec = hist.record_success(req.to_body(), api_result(), elapsed_s=float(i))
            gen = rec.to_generation()
        cells.append(GridCell(coords, req, gen))
    return Grid(axes, cells)


def table_rows(html: str) -> list[str]:
    return re.findall(r"<tr>.*?</tr>", html, re.DOTALL)


def test_grid_with_one_axis_is_one_row_of_columns(hist: History) -> None:
    html = grid_html(make_grid(hist, {"model": ["gpt-image-1", "gpt-image-2"]}))
    head, *rows = table_rows(html)
    assert "model=</span>gpt-image-1" in head and "model=</span>gpt-image-2" in head
    assert len(rows) == 1 and len(data_uris(rows[0])) == 2
    assert "1×2" not in html and "2 grid" not in html
    assert "2 requests · 2/2 done" in html  # a one-axis grid is a row of requests


def tiles(html: str) -> list[str]:
    return html.split('class="cometnb-grid-tile"')[1:]


def test_grid_of_prompts_is_a_wrapping_row_of_tiles_in_line_order(hist: History) -> None:
    prompts = [f"prompt number {i}: a fox in the snow" for i in range(12)]
    html = grid_html(make_grid(hist, {"prompt": prompts}))
    assert "<table" not in html and "flex-wrap:wrap" in html
    found = tiles(html)
    assert len(found) == 12
    for i, tile in enumerate(found):
        assert f"prompt number {i}:" in tile and len(data_uris(tile)) == 1
    assert "12 requests · 12/12 done" in html


def test_long_prompt_labels_wrap_at_words_with_the_whole_prompt_on_hover(hist: History) -> None:
    long = "a photograph " + "from generation to generation " * 12 + "the end"
    html = grid_html(make_grid(hist, {"prompt": [long, "short"]}))
    (label,) = re.findall(
        r'<span title="([^"]*)"><span[^>]*>prompt=</span>([^<]*)</span>', tiles(html)[0]
    )
    title, shown = label
    assert title == long  # the whole prompt on hover
    assert shown.endswith("…") and shown[:-1] == long[: len(shown) - 1].rstrip()
    assert long.startswith(shown[:-1]) and long[len(shown) - 1] == " "  # cut at a word
    assert "overflow-wrap:anywhere" in html  # the label wraps in its tile


def test_grid_two_axes_first_across_second_down(hist: History) -> None:
    axes = {"model": ["m1", "m2"], "size": ["1024x1024", "1536x1024", "1024x1536"]}
    html = grid_html(make_grid(hist, axes))
    head, *rows = table_rows(html)
    assert head.count("model=") == 2 and "size" in head
    assert len(rows) == 3 and all(len(data_uris(r)) == 2 for r in rows)
    assert "size=</span>1536x1024" in rows[1]
    assert "2×3 grid" in html


def test_grid_three_axes_rows_are_combinations(hist: History) -> None:
    axes = {"prompt": ["p1", "p2"], "quality": ["low", "high"], "format": ["png"]}
    html = grid_html(make_grid(hist, axes))
    head, *rows = table_rows(html)
    assert head.count("quality=") == 2  # the first non-prompt axis goes across
    assert len(rows) == 2 and "prompt=</span>p2" in rows[1] and "format=</span>png" in rows[1]


def test_interrupted_grid_says_what_was_sent(hist: History) -> None:
    from cometnb._client.runner import cancelled_error

    grid = make_grid(hist, {"size": ["a", "b", "c", "d"]}, done=1)
    for i, sent in ((1, False), (2, False), (3, True)):
        grid.cells[i].generation = Generation(
            grid.cells[i].request.to_body(), error=cancelled_error(sent), status="cancelled"
        )
    html = grid_html(grid)
    assert "1/4 done · 2 cancelled before sending · 1 cancelled after sending (may be billed)" in (
        html
    )
    assert "failed" not in html.split("</div>")[0]
    assert "cancelled before sending (nothing billed)" in html  # in the cells too


def test_pending_and_failed_cells(hist: History) -> None:
    grid = make_grid(hist, {"size": ["a", "b", "c"]}, done=1)
    grid.cells[1].generation = Generation(
        grid.cells[1].request.to_body(),
        error=APIError("x" * 1000, status=500),
        status="error",
    )
    html = grid_html(grid, {2: "waiting 5 s (HTTP 429)"})
    assert "waiting 5 s (HTTP 429)" in html and "xxx…" in html
    (summary,) = re.findall(r"<summary[^>]*>(.*?)</summary>", html)
    assert "x" * 300 not in summary and "show the full error" in summary
    assert "x" * 1000 in html.split("</summary>", 1)[1]  # the whole text, one click away
    assert "1/3 done · 1 failed" in html  # done counts images made, not cells finished
    listed = grid_html(grid, ["", "", "queued"])
    assert "queued" in listed
    assert "pending" in grid_html(grid)


def test_grid_names_what_every_cell_shares(hist: History) -> None:
    grid = make_grid(hist, {"model": ["m1", "m2"], "quality": ["low"]}, done=0)
    for cell in grid.cells:
        cell.request = cell.request.with_overrides(prompt="a <b>fox</b>", size="1024x1024")
    (shared,) = re.findall(r'class="cometnb-grid-shared".*?</div></div>', grid_html(grid))
    assert "a &lt;b&gt;fox&lt;/b&gt;" in shared and "<b>" not in shared
    assert "quality=low" in shared and "size=1024x1024" in shared and "m1" not in shared
    by_prompt = make_grid(hist, {"prompt": ["a fox", "an owl"]}, done=0)
    (line,) = re.findall(r'class="cometnb-grid-shared".*?</div>', grid_html(by_prompt))
    assert "a fox" not in line  # the prompt is an axis: it labels the rows instead


def test_a_live_grid_draws_each_finished_cell_once(
    hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = make_grid(hist, {"size": ["a", "b", "c"]}, done=1)
    drawn: list[int] = []
    real_preview = GeneratedImage.preview

    def counted(self: GeneratedImage, max_px: int | None = None) -> tuple[bytes, str]:
        drawn.append(id(self))
        return real_preview(self, max_px)

    monkeypatch.setattr(GeneratedImage, "preview", counted)
    finished: dict[int, str] = {}
    first = grid_html(grid, {1: "3 s", 2: "queued"}, finished)
    later = make_grid(hist, {"size": ["b"]}).cells[0].generation
    grid.cells[1].generation = later  # a second cell finishes
    second = grid_html(grid, {2: "4 s"}, finished)
    final = grid_html(grid, None, finished)
    assert len(drawn) == 2, "each finished preview is made once, however often the grid redraws"
    assert len(data_uris(first)) == 1 and len(data_uris(second)) == 2 == len(data_uris(final))
    assert final == grid_html(grid), "the cache changes the cost, not the view"


def test_grid_without_axes_shows_its_single_cell(hist: History) -> None:
    grid = make_grid(hist, {})
    assert len(grid.cells) == 1 and len(data_uris(grid_html(grid))) == 1


# --- history, record and comparison views ---------------------------------------------------


def test_history_table_is_newest_first_and_capped(hist: History) -> None:
    for i in range(53):
        hist.record_success(body(f"prompt {i}"), api_result(), elapsed_s=0)
    html = history_html(hist.records())
    rows = table_rows(html)[1:]
    assert len(rows) == 50 and "prompt 52" in rows[0] and "prompt 3<" in rows[-1]
    assert "3 more" in html and "53 record(s)" in html
    assert all(len(uri) < 10_000 for uri in data_uris(html))  # tiny thumbnails


def test_history_table_thumbnails_are_small_even_for_big_images(hist: History) -> None:
    hist.record_success(body(), api_result(noisy_png(1024)), elapsed_s=0)
    (thumb,) = data_uris(hist._repr_html_())
    from cometnb._core.images import inspect_image

    assert max(inspect_image(thumb)[1:]) <= THUMB_PX


def test_record_card_has_id_time_tags_origin(evil: Record) -> None:
    html = record_html(evil)
    assert evil.id in html and "tags:" in html and "re-run of" in html
    assert str(evil.created_at.astimezone().year) in html


@pytest.mark.parametrize(
    ("origin", "label"),
    [("magic", "made in the magic"), ("panel", "made in the panel"), ("r-1", "re-run of r-1")],
)
def test_origin_says_where_a_record_was_made(hist: History, origin: str, label: str) -> None:
    rec = hist.record_success(body(), api_result(), elapsed_s=1, origin=origin)
    html = record_html(rec)
    assert label in html
    if origin in ("magic", "panel"):
        assert "re-run of" not in html


def test_each_line_by_model_grid_is_a_table_with_every_header_named(hist: History) -> None:
    html = grid_html(make_grid(hist, {"prompt": ["a fox", "a whale"], "model": ["m1", "m2"]}))
    head, *rows = table_rows(html)
    assert "<th" in head and "></th>" not in head.split("</th>", 1)[1]
    assert head.count("model=") == 2 and len(rows) == 2


def test_compare_highlights_only_what_differs(hist: History) -> None:
    a = hist.record_success(body(quality="low", size="1024x1024"), api_result(), elapsed_s=1)
    b = hist.record_success(
        body(quality="high", size="1024x1024"), api_result(image_bytes(200, 100)), elapsed_s=2
    )
    html = compare_html([a, b])
    highlighted = [r for r in table_rows(html) if "#fff3b0" in r]
    assert len(highlighted) == 1 and "quality" in highlighted[0]
    assert "low" in highlighted[0] and "high" in highlighted[0]
    shared = html.split("Same in all:")[1]
    assert shared.count("1024x1024") == 1 and "a red fox in snow" in shared
    sizes = re.findall(r'<img [^>]*style="(width:\d+px;height:\d+px;)', html)
    assert len(sizes) == 2 and sizes[0] == sizes[1]  # aligned at one preview size


def test_compare_with_a_missing_field_says_not_sent(hist: History) -> None:
    a = hist.record_success(body(), api_result(), elapsed_s=1)
    b = hist.record_success(body(style="vivid"), api_result(), elapsed_s=1)
    shared, differing = split_settings([a, b])
    assert differing == {"style": [None, "vivid"]} and "style" not in shared
    assert "(not sent)" in compare_html([a, b])


def test_empty_history_view(hist: History) -> None:
    assert "empty" in history_html([])
