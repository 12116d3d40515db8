"""History and lineage for edits: inputs stored once by content, Record.sources / .parent / .kind,
lineage, find(kind=...), exports with the sources, and an old history (schema 1, written the
way the code before edits wrote it) that opens unchanged and gains the new fields."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _history_helpers import api_result, image_bytes

from cometnb._core.edit_inputs import EditBody, mask, resolve_source
from cometnb._core.errors import ValidationError
from cometnb._storage.index import SCHEMA_VERSION, Index
from cometnb.history import History

# The schema and a record document exactly as cometnb wrote them before edits (schema 1).
_V1_SCHEMA = """
CREATE TABLE records (
    id         TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    created_at REAL NOT NULL,
    prompt     TEXT NOT NULL,
    model      TEXT NOT NULL,
    status     TEXT NOT NULL,
    tags       TEXT NOT NULL DEFAULT '[]',
    doc        TEXT NOT NULL
);
CREATE INDEX records_seq ON records (seq);
PRAGMA user_version = 1;
"""


def _old_history(root: Path) -> str:
    (root / "images").mkdir(parents=True)
    name = "20261101-090000-0000-a1b2c3-0-a-red-fox.png"
    (root / "images" / name).write_bytes(image_bytes(64, 64))
    doc = {
        "request": {"model": "gpt-image-2", "prompt": "a red fox", "size": "1024x1024"},
        "images": [
            {"file": f"images/{name}", "preview": f"images/{name}", "format": "png",
             "width": 64, "height": 64, "bytes": 100, "revised_prompt": None}
        ],
        "usage": None, "meta": {}, "elapsed_s": 1.5, "error": None, "http_status": None,
        "origin": None, "synthetic": True, "version": "0.1.0",
    }  # fmt: skip
    conn = sqlite3.connect(root / "index.sqlite3")
    conn.executescript(_V1_SCHEMA)
    rid = "20261101-090000-0000-a1b2c3"
    conn.execute(
        "INSERT INTO records VALUES (?, 1, 1793523600.0, 'a red fox', 'gpt-image-2', 'ok',"
        " '[\"old\"]', ?)",
        (rid, json.dumps(doc)),
    )
    conn.commit()
    conn.close()
    return rid


def _edit_body(*sources: object, m: object = None, prompt: str = "at night") -> EditBody:
    images = [resolve_source(s) for s in sources]
    return EditBody(
        {"model": "gpt-image-1", "prompt": prompt}, images, resolve_source(m) if m else None
    )


def test_an_old_history_opens_unchanged_and_gains_the_fields(tmp_path: Path) -> None:
    root = tmp_path / "old"
    rid = _old_history(root)
    h = History(root)
    rec = h[0]
    assert (rec.id, rec.prompt, rec.tags, rec.images[0].width) == (rid, "a red fox", ("old",), 64)
    assert rec.sources == [] and rec.parent is None and rec.kind == "generate"
    assert h.lineage(rec) == [rec]
    # Writing migrates the index; the old record is untouched and edits can follow it.
    body = _edit_body(rec)
    new = h.record_success(body, api_result(image_bytes(64, 64)), elapsed_s=0.2)
    conn = sqlite3.connect(root / "index.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    conn.close()
    again = History(root)
    assert again[0].to_dict() == rec.to_dict()
    assert again.get(new.id).parent == rid  # type: ignore[union-attr]
    assert [r.id for r in again.lineage(again.get(new.id))] == [rid, new.id]  # type: ignore[arg-type]


def test_inputs_are_stored_once_by_content(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    photo = image_bytes(64, 64, "PNG", (1, 2, 3))
    m = mask((64, 64), box=(0, 0, 10, 10))
    for prompt in ("one", "two", "three"):
        h.record_success(_edit_body(photo, m=m, prompt=prompt), api_result(), elapsed_s=0)
    files = sorted(p.name for p in (h.path / "sources").iterdir())
    assert len(files) == 2 and all(f.endswith(".png") for f in files)
    rec = h[-1]
    assert [s.role for s in rec.sources] == ["image", "mask"]
    assert rec.sources[0].data == photo and rec.sources[0].to_input().sha256 in files[0] + files[1]
    assert rec.kind == "edit" and rec.parent is None  # a file, not a history image


def test_find_by_kind_and_a_failed_edit_keeps_its_sources(tmp_path: Path) -> None:
    from cometnb._core.errors import APIError

    h = History(tmp_path / "h")
    base = h.record_success({"model": "gpt-image-1", "prompt": "fox"}, api_result(), elapsed_s=0)
    edit = h.record_success(_edit_body(base), api_result(), elapsed_s=0)
    failed = h.record_failure(_edit_body(base), APIError("boom", status=500), elapsed_s=0)
    assert [r.id for r in h.find(kind="edit")] == [edit.id, failed.id]
    assert [r.id for r in h.find(kind="generate")] == [base.id]
    assert failed.parent == base.id and failed.sources[0].path is not None


def test_exports_carry_sources_and_links(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    base = h.record_success({"model": "gpt-image-1", "prompt": "fox"}, api_result(), elapsed_s=0)
    body = _edit_body(base, prompt="fox <b>at night</b>")
    edit = h.record_success(body, api_result(), elapsed_s=0.0)
    out = h.export(tmp_path / "all.zip")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        lines = [json.loads(x) for x in z.read("records.jsonl").decode().splitlines()]
    src_file = edit.sources[0].to_dict()["file"]
    assert any(n.endswith(src_file) for n in names)
    edited = next(x for x in lines if x["id"] == edit.id)
    assert edited["parent"] == base.id and edited["kind"] == "edit"
    assert edited["sources"][0]["record"] == base.id
    page = h.export(tmp_path / "all.html").read_text()
    assert "cometnb-sources" in page and "fox &lt;b&gt;at night&lt;/b&gt;" in page


def test_lineage_survives_a_new_process(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    a = h.record_success({"model": "gpt-image-1", "prompt": "a"}, api_result(), elapsed_s=0)
    b = h.record_success(_edit_body(a, prompt="b"), api_result(), elapsed_s=0)
    c = h.record_success(_edit_body(b, prompt="c"), api_result(), elapsed_s=0)
    code = (
        "import sys; from cometnb.history import History; h = History(sys.argv[1]);"
        "print(' '.join(r.id for r in h.lineage(h[-1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(h.path)], capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    assert out.stdout.split() == [a.id, b.id, c.id]


def test_an_old_history_that_cannot_be_migrated_still_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only schema-1 folder (say on a shared drive) is read as it is, not refused."""
    root = tmp_path / "old"
    rid = _old_history(root)

    def refuse(self: Index) -> sqlite3.Connection:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Index, "_open_writable", refuse)
    h = History(root)
    assert [r.id for r in h] == [rid] and h[0].kind == "generate" and h[0].sources == []
    conn = sqlite3.connect(root / "index.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1  # untouched
    conn.close()


def test_rerunning_an_edit_whose_inputs_were_not_stored_says_so(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    body = _edit_body(image_bytes(32, 32), prompt="p")
    rec = h.record_success(body, api_result(), elapsed_s=0.0)
    for src in rec.sources:
        assert src.path is not None
        src.path.unlink()
    with pytest.raises(ValidationError, match=r"input image\.png of record .* is no longer"):
        rec.to_request()


def test_the_dataframe_has_kind_and_parent(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    h = History(tmp_path / "h")
    base = h.record_success({"model": "gpt-image-1", "prompt": "fox"}, api_result(), elapsed_s=0)
    edit = h.record_success(_edit_body(base), api_result(), elapsed_s=0)
    frame = h.to_dataframe()
    assert list(frame["kind"]) == ["generate", "edit"]
    assert frame.loc[edit.id, "parent"] == base.id


def test_one_extension_rule_names_results_inputs_and_uploads(tmp_path: Path) -> None:
    """A JPEG is ``.jpg`` wherever cometnb names a file (``_core.images.file_extension``): the
    stored result, the input stored by content, and the upload name of an input re-sent from
    the history; the other formats keep their own name."""
    h = History(tmp_path / "h")
    jpeg, webp = image_bytes(48, 48, "JPEG"), image_bytes(40, 40, "WEBP")
    rec = h.record_success(
        _edit_body(jpeg, webp), api_result(image_bytes(32, 32, "JPEG")), elapsed_s=0.4
    )
    assert rec.images[0].path is not None and rec.images[0].path.suffix == ".jpg"
    again = h[-1]  # read back from the index
    assert [Path(src.to_dict()["file"]).suffix for src in again.sources] == [".jpg", ".webp"]
    assert [Path(src.to_input().filename).suffix for src in again.sources] == [".jpg", ".webp"]
