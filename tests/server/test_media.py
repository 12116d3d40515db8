"""Image routes against a real server: previews cached and revalidated, originals byte-exact,
SVG never served as an active document, no file outside the history folder served."""

from __future__ import annotations

import io
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from PIL import Image

from cometnb._storage.folder import History
from server.jupyter import Server

INERT = "sandbox; default-src 'none'"


def _main(server: Server) -> History:
    return History(server.root / "proj" / "cometnb-history")


def _url(rid: str, what: str, k: int = 0, part: str = "images") -> str:
    return f"/cometnb/api/records/{rid}/{part}/{k}/{what}"


def _assert_safe_headers(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == INERT


def test_previews_are_small_rasters_with_etags_and_304(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    h = _main(server)
    for rec in [*h.find(status="ok")[:12], h.get(server.ids["big"])]:
        assert rec is not None
        r = api.get(_url(rec.id, "preview"), params={"history": main_id})
        assert r.status_code == 200, r.text
        _assert_safe_headers(r)
        assert r.headers["content-type"] in ("image/webp", "image/png", "image/jpeg")
        assert r.headers["cache-control"] == "private, max-age=86400"
        with Image.open(io.BytesIO(r.content)) as img:
            assert max(img.size) <= 512
            assert img.format.lower() in ("webp", "png", "jpeg")
        again = api.get(
            _url(rec.id, "preview"),
            params={"history": main_id},
            headers={"If-None-Match": r.headers["etag"]},
        )
        assert again.status_code == 304 and again.content == b""
        other = api.get(
            _url(rec.id, "preview"), params={"history": main_id}, headers={"If-None-Match": '"x"'}
        )
        assert other.status_code == 200 and other.content == r.content
    big = h.get(server.ids["big"])
    assert big is not None and big.images[0].preview_path is not None
    stored = api.get(_url(big.id, "preview"), params={"history": main_id})
    assert stored.content == big.images[0].preview_path.read_bytes()  # the history's own


@pytest.mark.parametrize("px", [32, 100, 300])
def test_a_smaller_preview_on_request(
    server: Server, main_id: str, api: httpx.Client, px: int
) -> None:
    r = api.get(_url(server.ids["big"], "preview"), params={"history": main_id, "px": px})
    assert r.status_code == 200
    with Image.open(io.BytesIO(r.content)) as img:
        assert max(img.size) == px
    tagged = api.get(_url(server.ids["big"], "preview"), params={"history": main_id})
    assert tagged.headers["etag"] != r.headers["etag"]
    bad = api.get(_url(server.ids["big"], "preview"), params={"history": main_id, "px": 4})
    assert bad.status_code == 400 and "px must be a whole number from 16 to 2048" in bad.text


def test_a_missing_preview_is_made_in_memory_never_written(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    rec = _main(server).get(server.ids["no_preview"])
    assert rec is not None and rec.images[0].preview_path is not None
    r = api.get(_url(rec.id, "preview"), params={"history": main_id})
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.size == (512, 341)
    assert not rec.images[0].preview_path.exists()


def test_originals_are_byte_exact_and_streamed(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    h = _main(server)
    records = [*h.find(status="ok")[:9], h.get(server.ids["big"]), h.get(server.ids["two_images"])]
    seen = set()
    for rec in records:
        assert rec is not None
        for k, image in enumerate(rec.images):
            assert image.path is not None
            r = api.get(_url(rec.id, "original", k), params={"history": main_id})
            assert r.status_code == 200
            assert r.content == image.path.read_bytes()
            assert r.headers["content-type"] == f"image/{image.format}"
            assert int(r.headers["content-length"]) == image.path.stat().st_size
            assert "content-disposition" not in r.headers  # rasters are shown inline
            _assert_safe_headers(r)
            again = api.get(
                _url(rec.id, "original", k),
                params={"history": main_id},
                headers={"If-None-Match": r.headers["etag"]},
            )
            assert again.status_code == 304
            seen.add(image.format)
    assert seen == {"png", "jpeg", "webp"}
    two = api.get(_url(server.ids["two_images"], "original", 1), params={"history": main_id})
    with Image.open(io.BytesIO(two.content)) as img:
        assert img.size == (48, 64)


def test_an_svg_original_is_inert(server: Server, main_id: str, api: httpx.Client) -> None:
    rec = _main(server).get(server.ids["svg"])
    assert rec is not None and rec.images[0].path is not None
    r = api.get(_url(rec.id, "original"), params={"history": main_id})
    assert r.status_code == 200
    assert r.content == rec.images[0].path.read_bytes() and b"<script>" in r.content
    assert r.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
    assert r.headers["content-disposition"].endswith(".svg")
    assert r.headers["content-type"] == "image/svg+xml"
    _assert_safe_headers(r)
    # Its preview is a raster drawn by resvg: pixels, never the markup.
    preview = api.get(_url(rec.id, "preview"), params={"history": main_id})
    assert preview.status_code == 200 and b"<svg" not in preview.content
    assert preview.headers["content-type"] in ("image/webp", "image/png")
    with Image.open(io.BytesIO(preview.content)) as img:
        assert img.convert("RGB").getpixel((img.width // 2, img.height // 2)) == (255, 0, 0)
    download = api.get(_url(rec.id, "download"), params={"history": main_id})
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["content-security-policy"] == INERT


def test_download_is_a_labelled_copy_as_an_attachment(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    rec = _main(server).find(status="ok", model="gpt-image-2")[0]
    image = rec.images[0]
    assert image.path is not None
    r = api.get(_url(rec.id, "download"), params={"history": main_id})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == (f"attachment; filename*=UTF-8''{image.path.name}")
    assert r.headers["cache-control"] == "no-store"
    assert r.content != image.path.read_bytes()  # carries its provenance ...
    assert rec.id.encode() in r.content
    with Image.open(io.BytesIO(r.content)) as copy, Image.open(image.path) as original:
        assert copy.tobytes() == original.tobytes()  # ... and the very same pixels


def test_an_edit_input_and_its_mask_have_previews(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    rec = _main(server).get(server.ids["chain"][-1])
    assert rec is not None
    for k, source in enumerate(rec.sources):
        r = api.get(_url(rec.id, "preview", k, "sources"), params={"history": main_id})
        assert r.status_code == 200
        with Image.open(io.BytesIO(r.content)) as img:
            assert img.size == (source.width, source.height)
            assert (img.mode == "RGBA") == (source.role == "mask")


def _live(server: Server) -> tuple[History, str]:
    return History(server.root / "live" / "cometnb-history"), server.history_id(
        "live/cometnb-history"
    )


def test_an_image_swapped_for_a_symlink_out_of_the_folder_is_not_served(
    server: Server, api: httpx.Client
) -> None:
    h, hid = _live(server)
    rec = h.find(status="ok")[0]
    path = rec.images[0].path
    assert path is not None
    r = api.get(_url(rec.id, "original"), params={"history": hid})
    assert r.status_code == 200
    path.unlink()
    os.symlink(server.ids["secret"], path)
    for what in ("original", "preview", "download"):
        r = api.get(_url(rec.id, what), params={"history": hid})
        assert r.status_code == 404, what
        assert b"not for the browser" not in r.content


def test_a_record_naming_a_file_outside_is_not_served(server: Server, api: httpx.Client) -> None:
    h, hid = _live(server)
    rec = h.find(status="ok")[-1]
    index = server.root / "live" / "cometnb-history" / "index.sqlite3"
    with closing(sqlite3.connect(index)) as conn:
        (doc_text,) = conn.execute("SELECT doc FROM records WHERE id = ?", (rec.id,)).fetchone()
    doc = json.loads(doc_text)
    outside = os.path.relpath(server.ids["secret"], index.parent)
    doc["images"][0]["file"] = outside
    doc["images"][0]["preview"] = server.ids["secret"]
    with closing(sqlite3.connect(index)) as conn, conn:
        conn.execute("UPDATE records SET doc = ? WHERE id = ?", (json.dumps(doc), rec.id))
    for what in ("original", "preview", "download"):
        r = api.get(_url(rec.id, what), params={"history": hid})
        assert r.status_code == 404, what
        assert b"not for the browser" not in r.content
    assert Path(server.ids["secret"]).is_file()


def test_sidebar_payloads_and_media_never_carry_svg_markup(
    server: Server, main_id: str, api: httpx.Client
) -> None:
    """What the sidebar receives for the SVG and GIF answers: JSON without markup, raster
    previews (the GIF's animated), the SVG original only as an inert attachment."""
    pages = [
        api.get("/cometnb/api/records", params={"history": main_id, "tag": "logo"}),
        api.get(f"/cometnb/api/records/{server.ids['svg']}", params={"history": main_id}),
        api.get(f"/cometnb/api/records/{server.ids['gif']}", params={"history": main_id}),
    ]
    for page in pages:
        assert page.status_code == 200, page.text
        text = page.text.lower()
        assert "<script" not in text and "onload" not in text and "<svg" not in text
    listed = {r["id"]: r["images"][0]["format"] for r in pages[0].json()["records"]}
    assert listed[server.ids["svg"]] == "svg" and listed[server.ids["gif"]] == "gif"
    for rid in (server.ids["svg"], server.ids["gif"]):
        for px in (None, 96):
            params = {"history": main_id, **({"px": px} if px else {})}
            r = api.get(_url(rid, "preview"), params=params)
            assert r.status_code == 200 and r.headers["content-type"] != "image/svg+xml"
            assert b"<svg" not in r.content and b"<script" not in r.content
            _assert_safe_headers(r)
            with Image.open(io.BytesIO(r.content)) as img:
                frames = getattr(img, "n_frames", 1)
                assert frames == (4 if rid == server.ids["gif"] else 1)
    gif = api.get(_url(server.ids["gif"], "original"), params={"history": main_id})
    assert gif.headers["content-type"] == "image/gif" and "content-disposition" not in gif.headers
