"""History questions answered by SQLite (cometnb._storage.queries): the same answers as a full
scan of every record, without loading them."""

from __future__ import annotations

from pathlib import Path

import pytest
from _history_helpers import api_result, body

from cometnb._core.errors import APIError
from cometnb.history import History

PROMPTS = [
    ("A Red Fox in snow", "gpt-image-2", ["animals"], None),
    ("an owl at 100% zoom", "gpt-image-1-mini", ["animals", "birds"], None),
    ("a_snake_case title", "gpt-image-2", ["an"], None),
    ("Zürich old town at dusk", "dall-e-3", [], "A photo of Zürich's old town, evening"),
    ("a teapot", "gpt-image-2", ["kitchen"], 'the "best" teapot'),
]


@pytest.fixture
def filled(tmp_path: Path) -> History:
    hist = History(tmp_path / "h")
    for prompt, model, tags, revised in PROMPTS:
        result = api_result(revised=revised)
        hist.record_success(body(prompt, model), result, elapsed_s=1.0, tags=tags)
    hist.record_failure(
        body("a failed fox", "gpt-image-2"), APIError("boom", status=500), elapsed_s=0.5
    )
    return hist


def scan(hist: History, **filters: str | None) -> list[str]:
    """What the old full scan answered: every record checked in Python."""
    text = filters.get("text")
    needle = text.casefold() if text else None
    out = []
    for rec in hist.records():
        if filters.get("model") not in (None, rec.model):
            continue
        if filters.get("status") not in (None, rec.status):
            continue
        if filters.get("tag") is not None and filters["tag"] not in rec.tags:
            continue
        mentions = [rec.prompt, *rec.revised_prompts]
        if needle is not None and not any(needle in m.casefold() for m in mentions):
            continue
        out.append(rec.id)
    return out


@pytest.mark.parametrize(
    "filters",
    [
        {"text": "fox"},
        {"text": "RED FOX"},
        {"text": "100%"},
        {"text": "_snake"},
        {"text": "zürich"},  # non-ASCII: no SQL narrowing, same answer
        {"text": "evening"},  # only in a revised prompt
        {"text": '"best"'},  # quotes, as JSON stores them
        {"text": "model"},  # a word of the stored document, not of any prompt
        {"tag": "an"},  # not a prefix match of "animals"
        {"tag": "animals", "model": "gpt-image-2"},
        {"status": "error"},
        {"model": "dall-e-3", "text": "old"},
        {},
    ],
)
def test_find_answers_as_a_full_scan(filled: History, filters: dict[str, str]) -> None:
    found = [r.id for r in filled.find(**filters)]
    assert found == scan(filled, **filters)


def test_len_index_and_get_without_loading_the_records(filled: History) -> None:
    fresh = History(filled.path)
    assert len(fresh) == 6
    assert fresh[-1].prompt == "a failed fox" and fresh[0].prompt == "A Red Fox in snow"
    assert fresh[-2].prompt == "a teapot" and fresh[2].prompt == "a_snake_case title"
    assert fresh.get(fresh[1].id) == fresh[1] and fresh.get("no-such-id") is None
    with pytest.raises(IndexError, match="out of range"):
        fresh[6]
    with pytest.raises(IndexError, match="out of range"):
        fresh[-7]
    assert fresh._by_id == {}  # nothing above needed every record in memory


def test_tags_read_back_after_a_change(filled: History) -> None:
    rec = filled.tag(-1, "retry-later")
    assert rec.tags == ("retry-later",) and filled.find(tag="retry-later") == [rec]
    assert filled.untag(rec, "retry-later").tags == ()


def test_an_older_folder_gets_its_search_indexes_on_the_first_search(filled: History) -> None:
    import sqlite3

    filled.close()
    conn = sqlite3.connect(filled.path / "index.sqlite3")
    conn.execute("DROP INDEX records_prompt")
    conn.execute("DROP INDEX records_revised")
    conn.commit()
    conn.close()
    older = History(filled.path)
    assert [r.prompt for r in older.find(text="evening")] == ["Zürich old town at dusk"]
    conn = sqlite3.connect(filled.path / "index.sqlite3")
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert {"records_prompt", "records_revised"} <= names
