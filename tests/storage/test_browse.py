"""The read-only browser: pages equal ``History.find`` (reversed, within date and cost bounds)
and nothing is ever written, not even to an old folder that a kernel would migrate."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _history_helpers import api_result
from _seed_history import seed_mixed

from cometnb._core.errors import CometError
from cometnb._storage.browse import Browser, RecordFilter
from cometnb._storage.folder import History
from cometnb._storage.index import Index
from cometnb._storage.records import Record


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browse") / "cometnb-history"
    seed_mixed(root, 220)
    return root


def _expected(h: History, filt: RecordFilter) -> list[str]:
    found = h.find(text=filt.text, model=filt.model, tag=filt.tag, status=filt.status)
    kept = []
    for rec in found:
        if filt.since is not None and rec.timestamp < filt.since:
            continue
        if filt.until is not None and rec.timestamp >= filt.until:
            continue
        if filt.bounds_cost and not filt.cost_fits(rec.cost.usd):
            continue
        kept.append(rec.id)
    return kept[::-1]


def _filters(h: History, count: int) -> list[RecordFilter]:
    """Combinations of every filter, drawn with a fixed seed (so a failure repeats)."""
    rng = random.Random(25)
    records = h.records()
    texts = ["fox", "FOX", "aurora", "zebra", "take 1", "ß", "É", "oil_p", "50%", "snow"]
    models = ["gpt-image-2", "dall-e-3", "qwen-image", "gpt-image-1"]
    tags = ["poster", "straße", "edit", "food"]

    def maybe(values: list[Any], chance: float) -> Any:
        return rng.choice(values) if rng.random() < chance else None

    out = []
    for _ in range(count):
        since, until = sorted(rng.sample([r.timestamp for r in records], 2))
        out.append(
            RecordFilter(
                text=maybe(texts, 0.5),
                model=maybe(models, 0.4),
                tag=maybe(tags, 0.25),
                status=maybe(["ok", "error", "cancelled"], 0.4),
                since=maybe([since], 0.3),
                until=maybe([until], 0.3),
                min_cost=maybe([0.0, 0.011, 0.04], 0.25),
                max_cost=maybe([0.0, 0.02, 0.2], 0.25),
            )
        )
    return out


def test_pages_are_history_find_reversed(mixed: Path) -> None:
    h, browser = History(mixed), Browser(mixed)
    filters = [RecordFilter(), RecordFilter(text="aurora"), *_filters(h, 80)]
    hits = 0
    for filt in filters:
        expected = _expected(h, filt)
        hits += bool(expected)
        page = browser.page(filt, 0, 1000)
        assert [r.id for r in page.records] == expected, filt
        assert page.total == len(expected)
        if len(expected) > 7:
            middle = browser.page(filt, 3, 4)
            assert [r.id for r in middle.records] == expected[3:7]
            assert middle.total == len(expected)
    assert hits > 30  # the combinations are not all empty


def test_non_ascii_text_and_revised_prompts(mixed: Path) -> None:
    h, browser = History(mixed), Browser(mixed)
    street = h.find(text="quiet street")
    for text in ("ZEBRA", "Ré", "straße", "AURORA borealis"):
        filt = RecordFilter(text=text)
        assert [r.id for r in browser.page(filt).records] == _expected(h, filt)
    assert [r.id for r in browser.page(RecordFilter(text="zebra")).records] == [street[1].id]


def test_tags_match_exactly_also_beyond_ascii(tmp_path: Path) -> None:
    """``find(tag=...)`` used to miss tags with accents (the column keeps them unescaped)."""
    h = History(tmp_path / "h")
    cafe = h.record_success({"model": "gpt-image-2", "prompt": "x"}, api_result(), elapsed_s=0)
    h.tag(cafe, "café", "50%_off")
    plain = h.record_success({"model": "gpt-image-2", "prompt": "y"}, api_result(), elapsed_s=0)
    h.tag(plain, "cafe", "50x_off")
    assert [r.id for r in h.find(tag="café")] == [cafe.id]
    assert [r.id for r in h.find(tag="50%_off")] == [cafe.id]
    assert [r.id for r in h.find(tag="caf")] == []
    browser = Browser(h.path)
    assert [r.id for r in browser.page(RecordFilter(tag="café")).records] == [cafe.id]


def test_records_without_a_stored_cost_are_priced_like_record_cost(mixed: Path) -> None:
    h, browser = History(mixed), Browser(mixed)
    old = [r for r in h.records() if "cost" not in r._document()]
    assert len(old) == 6 and all(r.cost.usd for r in old)
    usd = sorted(r.cost.usd or 0.0 for r in old)
    filt = RecordFilter(min_cost=usd[0], max_cost=usd[-1], model="gpt-image-1-mini")
    page = browser.page(filt)
    assert {r.id for r in old} <= {r.id for r in page.records}
    assert [r.id for r in page.records] == _expected(h, filt)


def test_revision_and_facets(mixed: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(mixed, copy)
    h, browser = History(copy), Browser(copy)
    records = h.records()
    rev = browser.revision()
    assert (rev.count, rev.newest) == (len(records), records[-1].id)
    facets = browser.facets()
    assert sum(facets.models.values()) == sum(facets.statuses.values()) == len(records)
    assert facets.tags["straße"] == 2 and facets.first == records[0].timestamp
    new = h.record_success({"model": "gpt-image-2", "prompt": "z"}, api_result(), elapsed_s=0)
    after = browser.revision()
    assert (after.count, after.newest) == (rev.count + 1, new.id) and after.token != rev.token
    h.tag(new, "kept")
    assert browser.revision().token != after.token
    assert browser.revision().count == after.count


def test_lineage_and_children(mixed: Path) -> None:
    h, browser = History(mixed), Browser(mixed)
    edits = [r for r in h.records() if r.kind == "edit"]
    last = browser.get(edits[-1].id)
    assert last is not None
    assert [r.id for r in browser.lineage(last)] == [r.id for r in h.lineage(edits[-1])]
    assert len(browser.lineage(last)) == 4
    chain = browser.lineage(last)
    first = chain[0]
    # The seeded history has edits of its own besides this chain: the chain's next step is
    # among the first record's children, and the browser and History agree on all of them.
    assert browser.children(first) == [r.id for r in h.children(first)]
    assert chain[1].id in browser.children(first)
    assert browser.get("20990101-000000-0000-000000") is None


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


_V1 = """
CREATE TABLE records (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, created_at REAL NOT NULL,
    prompt TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]', doc TEXT NOT NULL);
CREATE INDEX records_seq ON records (seq);
"""


def test_an_old_folder_is_read_as_it_is(mixed: Path, tmp_path: Path) -> None:
    """Schema 1, no search or spend index: a kernel would migrate it and add indexes; the
    browser reads it unchanged (scans) with the same answers."""
    old = tmp_path / "old"
    old.mkdir()
    with closing(sqlite3.connect(mixed / "index.sqlite3")) as src:
        rows = src.execute("SELECT * FROM records").fetchall()
    with closing(sqlite3.connect(old / "index.sqlite3")) as conn, conn:
        conn.executescript(_V1)
        conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("PRAGMA user_version = 1")
    for sub in ("images", "previews", "sources"):
        shutil.copytree(mixed / sub, old / sub)
    before = _tree(old)
    browser = Browser(old)
    reference = History(shutil.copytree(old, tmp_path / "reference"))  # migrates its copy
    for filt in _filters(reference, 25):
        assert [r.id for r in browser.page(filt, 0, 1000).records] == _expected(reference, filt)
    browser.facets()
    browser.revision()
    browser.close()
    assert _tree(old) == before
    with closing(sqlite3.connect(old / "index.sqlite3")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert names == {"records_seq", "sqlite_autoindex_records_1"}


def test_a_read_only_index_creates_nothing_and_refuses_writes(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-yet"
    browser = Browser(empty)
    assert browser.page(RecordFilter(text="x")).total == 0
    assert browser.revision().count == 0 and browser.facets().models == {}
    assert not empty.exists()
    h = History(tmp_path / "h")
    rec = h.record_success({"model": "gpt-image-2", "prompt": "x"}, api_result(), elapsed_s=0)
    index = Index(h.path, read_only=True)
    assert index.count() == 1
    with pytest.raises(CometError, match="opened read-only"):
        index.set_tags(rec.id, '["x"]')
    index.close()


def test_a_replaced_index_is_followed(mixed: Path, tmp_path: Path) -> None:
    """``History.repair`` moves a damaged index aside and writes a new one: the browser,
    which keeps its connection open, reads the new file."""
    copy = tmp_path / "copy"
    shutil.copytree(mixed, copy)
    browser = Browser(copy)
    total = browser.page(RecordFilter()).total
    index = copy / "index.sqlite3"
    smaller = tmp_path / "smaller.sqlite3"
    shutil.copy(index, smaller)
    with closing(sqlite3.connect(smaller)) as conn, conn:
        conn.execute("DELETE FROM records WHERE status != 'ok'")
    smaller.replace(index)
    page = browser.page(RecordFilter())
    assert page.total < total and all(isinstance(r, Record) and r.ok for r in page.records)
