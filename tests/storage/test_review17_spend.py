"""Review of issue 17: History.spend by SQL against the Python reference on odd documents."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _history_helpers import api_result, body

from cometnb._storage.spend import spend
from cometnb.history import History


@pytest.mark.xfail(
    strict=True, reason="review 17 #8: a duplicated JSON key: SQLite reads the first"
)
def test_a_document_with_a_duplicated_cost_key_is_priced_as_python_reads_it(
    tmp_path: Path,
) -> None:
    """A hand-edited (or foreign) record document with ``usd`` twice: Python's json keeps the
    last value, SQLite's JSON functions the first, so h.spend() and spend(h.records()) differ."""
    hist = History(tmp_path / "h")
    hist.record_success(
        body("a fox", "gpt-image-2", size="1024x1024", quality="low"), api_result(), elapsed_s=1.0
    )
    conn = sqlite3.connect(hist.path / "index.sqlite3")
    with conn:
        doc = conn.execute("SELECT doc FROM records").fetchone()[0]
        conn.execute(
            "UPDATE records SET doc = ?", (doc.replace('"cost":{', '"cost":{"usd":5.0,', 1),)
        )
    conn.close()
    fresh = History(hist.path)
    assert fresh.spend() == pytest.approx(spend(fresh.records()))
