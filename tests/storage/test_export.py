"""Exports: a self-contained HTML gallery, a zip of originals, JSON lines, a DataFrame."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import sys
import zipfile
from pathlib import Path

import pytest
from _history_helpers import api_result, body, image_bytes
from PIL import Image

from cometnb._core.errors import APIError, CometError, ValidationError
from cometnb._storage.preview_queue import previews
from cometnb.history import History

EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
def filled(hist: History) -> History:
    hist.record_success(
        body("a red fox", size="1024x1024", quality="high"),
        api_result(image_bytes(1024, 1024), usage={"total_tokens": 224}, size="1024x1024"),
        elapsed_s=12.0,
        tags=["animals"],
    )
    hist.record_success(body(EVIL, model="dall-e-3"), api_result(revised=EVIL), elapsed_s=9.0)
    hist.record_failure(body("blocked"), APIError("moderation_blocked", status=400), elapsed_s=1)
    return hist


def test_html_gallery_is_self_contained(filled: History, tmp_path: Path) -> None:
    out = filled.export(tmp_path / "gallery.html")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.count('class="rec"') == 3
    assert "<script" not in text.lower()
    outside_data = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"https?:|//|url\(|@import", outside_data, re.IGNORECASE)
    for attr in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert attr.startswith("data:image/"), attr
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror" in text
    assert "total_tokens=224" in text and "quality=high" in text and "moderation_blocked" in text
    original = filled[0].images[0].path
    assert original is not None and original.name in text
    assert len(text) < original.stat().st_size + 200_000  # previews, not originals


def test_zip_has_originals_and_records(filled: History, tmp_path: Path) -> None:
    out = filled.export(tmp_path / "sub" / "all.zip")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names[0] == "records.jsonl" and len(names) == 3
        lines = [json.loads(x) for x in zf.read("records.jsonl").decode().splitlines()]
        for rec in filled:
            for img, file in zip(rec.images, rec.files, strict=True):
                assert img.path is not None
                # The server's pixels, never re-encoded, plus the record's provenance.
                data = zf.read(file)
                with Image.open(io.BytesIO(data)) as copy, Image.open(img.path) as orig:
                    assert copy.tobytes() == orig.tobytes()
                    assert rec.id in str(copy.info.get("cometnb") or copy.info.get("xmp"))
    assert [x["prompt"] for x in lines] == ["a red fox", EVIL, "blocked"]
    assert lines[2]["status"] == "error" and lines[2]["http_status"] == 400


def test_jsonl_is_metadata_only(filled: History, tmp_path: Path) -> None:
    out = filled.export(tmp_path / "meta.jsonl")
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == [r.id for r in filled]
    first = lines[0]
    assert first["request"] == body("a red fox", size="1024x1024", quality="high")
    assert first["usage"] == {"total_tokens": 224} and first["tags"] == ["animals"]
    assert first["images"][0]["file"].startswith("images/")
    assert lines[1]["revised_prompts"] == [EVIL]


def test_export_of_a_subset(filled: History, tmp_path: Path) -> None:
    out = filled.export(tmp_path / "foxes.jsonl", filled.find(text="fox"))
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1


def test_unknown_suffix_names_the_allowed_ones(filled: History, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"\.html, \.zip or \.jsonl"):
        filled.export(tmp_path / "out.pdf")
    with pytest.raises(ValidationError, match="folder"):
        filled.export(tmp_path)  # no suffix: refused before anything is written
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(ValidationError, match="folder"):
        filled.export(tmp_path / "dir.html")
    assert not (tmp_path / "out.pdf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_zip_member_names_cannot_escape(filled: History, tmp_path: Path) -> None:
    # A tampered index pointing at "../x" neither names a member outside "images/" nor
    # pulls in a file from outside the history folder.
    rec = filled[0]
    (tmp_path / "secret.png").write_bytes(b"not for export")
    conn = sqlite3.connect(filled._index.path)
    (doc,) = conn.execute("SELECT doc FROM records WHERE id = ?", (rec.id,)).fetchone()
    evil = doc.replace(rec.files[0], "images/../../secret.png")
    with conn:
        conn.execute("UPDATE records SET doc = ?, seq = seq + 100 WHERE id = ?", (evil, rec.id))
    conn.close()
    out = History(filled.path).export(tmp_path / "x.zip")
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert all(re.fullmatch(r"records\.jsonl|MISSING\.txt|images/[^/\\]+", n) for n in names)
        assert "images/secret.png" not in names
        assert "outside the history folder" in zf.read("MISSING.txt").decode()


def test_missing_files_are_listed_not_fatal(filled: History, tmp_path: Path) -> None:
    img = filled[0].images[0]
    assert img.path is not None and img.preview_path is not None
    assert previews().drain(10)  # previews are made after the commit
    img.path.unlink()
    img.preview_path.unlink()
    with zipfile.ZipFile(filled.export(tmp_path / "x.zip")) as zf:
        assert zf.read("MISSING.txt").decode().strip() == filled[0].files[0]
    assert "image file missing" in filled.export(tmp_path / "x.html").read_text("utf-8")


def test_to_dataframe(filled: History) -> None:
    frame = filled.to_dataframe()
    assert list(frame["prompt"]) == ["a red fox", EVIL, "blocked"]
    assert list(frame["status"]) == ["ok", "ok", "error"]
    assert frame.loc[filled[0].id, "total_tokens"] == 224
    assert frame.loc[filled[0].id, "size"] == "1024x1024"
    assert frame.loc[filled[2].id, "http_status"] == 400
    assert frame["tags"].iloc[0] == ["animals"] and frame["images"].tolist() == [1, 1, 0]


def test_to_dataframe_without_pandas_says_how_to_install(
    filled: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(CometError, match=r"pip install cometnb\[pandas\]"):
        filled.to_dataframe()


def test_empty_history_exports(hist: History, tmp_path: Path) -> None:
    assert hist.export(tmp_path / "e.jsonl").read_text() == ""
    assert "0 record(s)" in hist.export(tmp_path / "e.html").read_text()
    assert len(hist.to_dataframe()) == 0
