"""``History.spend`` answered by SQLite (cometnb._storage.spend): the same answer as
the Python ledger ``spend(h.records(), since, by)`` on a mixed history, without building a
Record, on folders with no index, an older index without the spend index, a read-only folder,
and while another process writes."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from _history_helpers import api_result, body

from cometnb._core.errors import APIError, CancelledError, RateLimitError, ResponseError
from cometnb._storage.index import Index
from cometnb._storage.records import Record
from cometnb._storage.spend import _TOTAL, UNTAGGED, SpendTable, _grouped, spend
from cometnb.history import History

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400
# 2026-11-28 00:00 UTC: the records are spread over the following days, a few hours apart.
BASE = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc).timestamp()
MODELS = ("gpt-image-2", "gpt-image-1-mini", "dall-e-3", "flux-kontext-unpriced")
TAGS: tuple[tuple[str, ...], ...] = ((), ("cover",), ("cover", "v2"), ("batch:catalog",), ())
PROMPTS = (
    "a lighthouse on a cliff at dusk, oil painting",
    "a red fox asleep in fresh snow, morning light",
    "an isometric pixel-art bakery with a striped awning",
    "product shot of a ceramic mug on linen, soft light",
)
USAGE = {
    "input_tokens": 16,
    "output_tokens": 1756,
    "total_tokens": 1772,
    "input_tokens_details": {"text_tokens": 16},
}


def _request(i: int) -> dict[str, Any]:
    model = MODELS[i % len(MODELS)]
    fields: dict[str, Any] = {"size": "1024x1024"}
    if model == "dall-e-3":
        fields["quality"] = "hd" if i % 2 else "standard"
    elif model != "flux-kontext-unpriced":
        fields["quality"] = ("low", "medium", "high")[i % 3]
    return body(PROMPTS[i % len(PROMPTS)], model, **fields)


def _failure(i: int) -> tuple[BaseException, str]:
    kind = i % 5
    if kind == 0:
        return APIError("upstream error", status=500), "error"  # may be billed: its estimate
    if kind == 1:
        return APIError("your request was rejected", status=400), "error"  # refused: $0
    if kind == 2:
        return RateLimitError("slow down", status=429), "error"  # not billed
    if kind == 3:
        return ResponseError("the response was cut off"), "error"  # billed-uncertain
    return CancelledError("stopped by the user"), "cancelled"


def _mixed_history(root: Path) -> History:
    """64 records written as the client writes them, then moved to other days and a few made
    old (no stored cost) or odd (cost fields of unusual JSON types), through the index."""
    hist = History(root)
    for i in range(64):
        tags = TAGS[i % len(TAGS)]
        if i % 4 == 3:
            error, status = _failure(i)
            hist.record_failure(_request(i), error, elapsed_s=2.5, tags=tags, status=status)  # type: ignore[arg-type]
        else:
            usage = USAGE if i % 3 else {}
            hist.record_success(_request(i), api_result(usage=usage), elapsed_s=9.0, tags=tags)
    ids = [r.id for r in hist.records()]
    conn = sqlite3.connect(root / "index.sqlite3")
    with conn:
        for n, rid in enumerate(ids):  # five days, every 1 h 50 min
            conn.execute("UPDATE records SET created_at = ? WHERE id = ?", (BASE + n * 6600, rid))
        # At midnight's edge: Python's day (rounded to the µs) is the next one for the first,
        # the same one for the second (SQLite's date() would say the next: it rounds to ms).
        conn.execute("UPDATE records SET created_at = ? WHERE id = ?", (BASE + DAY - 3e-7, ids[5]))
        conn.execute("UPDATE records SET created_at = ? WHERE id = ?", (BASE + DAY - 4e-4, ids[6]))
        # Old records, written before costs were kept: priced now, marked estimated.
        for rid in (ids[1], ids[7], ids[10], ids[22]):
            conn.execute("UPDATE records SET doc = json_remove(doc, '$.cost') WHERE id = ?", (rid,))
        # Odd types Python reads its own way: a text usd (unknown), a text "estimated" flag.
        conn.execute(
            "UPDATE records SET doc = json_set(doc, '$.cost.usd', '0.04') WHERE id = ?", (ids[13],)
        )
        conn.execute(
            "UPDATE records SET doc = json_set(doc, '$.cost.estimated', 'yes') WHERE id = ?",
            (ids[14],),
        )
        # A record from a machine whose clock was wrong: before 1970.
        conn.execute("UPDATE records SET created_at = ? WHERE id = ?", (-3 * DAY + 0.5, ids[9]))
    conn.close()
    return History(root)


def _assert_same(found: float | SpendTable, expected: float | SpendTable) -> None:
    if not isinstance(expected, SpendTable):
        assert isinstance(found, float) and not isinstance(found, SpendTable)
        assert found == expected  # exact: both add whole nano-dollars
        return
    assert isinstance(found, SpendTable) and found.by == expected.by
    assert list(found) == list(expected)  # same rows, same order
    assert list(found.values()) == list(expected.values())
    assert found.counts == expected.counts
    assert found.unknown == expected.unknown
    assert found.estimated == expected.estimated
    assert found.requests == expected.requests
    assert found.total == expected.total
    assert found.overlaps == expected.overlaps


@pytest.fixture
def mixed(tmp_path: Path) -> History:
    return _mixed_history(tmp_path / "h")


SINCE: tuple[Any, ...] = (
    None,
    dt.datetime(2026, 11, 29, 12, 30),  # naive: UTC
    "2026-11-30T00:00:00+00:00",
    dt.date(2026, 12, 1),
    BASE + 20 * 6600,  # a record's own time: kept (at or after)
    -1e9,
    "2999-01-01",  # after every record: nothing
)


@pytest.mark.parametrize("since", SINCE)
@pytest.mark.parametrize("by", [None, "model", "day", "tag"])
def test_sql_spend_equals_the_python_ledger(mixed: History, since: Any, by: Any) -> None:
    _assert_same(mixed.spend(since, by), spend(mixed.records(), since, by))


def test_the_mixed_history_has_what_the_ledger_tells_apart(mixed: History) -> None:
    """The data covers every case (else the equality above would prove little)."""
    recs = mixed.records()
    by_day = mixed.spend(by="day")
    by_tag = mixed.spend(by="tag")
    by_model = mixed.spend(by="model")
    assert isinstance(by_day, SpendTable) and isinstance(by_tag, SpendTable)
    assert isinstance(by_model, SpendTable)
    assert len(recs) == 64 and by_model.requests == 64
    assert len(by_day) >= 6 and "1969-12-29" in by_day  # five days, midnight's edge, pre-1970
    # Midnight's edge: Python rounds to the µs (the next day), SQLite's date() to the ms.
    edge, near = recs[5], recs[6]
    assert int(edge.timestamp) < BASE + DAY and edge.created_at.date() == dt.date(2026, 11, 29)
    assert near.created_at.date() == dt.date(2026, 11, 28)
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT date(?, 'unixepoch')", (near.timestamp,)).fetchone()[0] == (
        "2026-11-29"
    )
    conn.close()
    assert {"cover", "v2", "batch:catalog", UNTAGGED} <= set(by_tag) and by_tag.overlaps
    assert by_model.unknown["flux-kontext-unpriced"] >= 10
    assert sum(by_model.estimated.values()) >= 8  # billed-uncertain failures and old records
    costs = [r.cost for r in recs]
    assert any(c.usd == 0.0 for c in costs) and any(c.usd is None for c in costs)
    assert any(c.estimated and c.usd for c in costs) and any(
        not c.estimated and c.usd for c in costs
    )
    assert sum("record kept no cost" in c.basis for c in costs) == 4
    assert {r.status for r in recs} == {"ok", "error", "cancelled"}


def test_spend_builds_no_record(mixed: History, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = {by: spend(mixed.records(), None, by) for by in (None, "model", "day", "tag")}
    fresh = History(mixed.path)

    def refuse(*args: object) -> Record:
        raise AssertionError("History.spend built a Record")

    monkeypatch.setattr(Record, "_from_row", refuse)
    for by, table in expected.items():
        _assert_same(fresh.spend(by=by), table)  # type: ignore[arg-type]


def test_the_spend_index_is_made_for_an_older_folder_and_used(mixed: History) -> None:
    db = mixed.path / "index.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX records_spend")  # a folder made before the spend index
    conn.commit()
    expected = spend(mixed.records(), None, "tag")
    fresh = History(mixed.path)
    _assert_same(fresh.spend(by="tag"), expected)  # made on the first spend question
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "records_spend" in names
    for sql in (_TOTAL, _grouped("model"), _grouped("day"), _grouped("tag")):
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (0,)))
        assert "USING INDEX records_spend" in plan, plan
        if sql != _TOTAL:  # the range is read apart from the GROUP BY, which would recompute
            assert "CO-ROUTINE" in plan or "MATERIALIZE" in plan, plan
    conn.close()


def test_a_history_without_an_index_spent_nothing(tmp_path: Path) -> None:
    hist = History(tmp_path / "never-written")
    assert hist.spend() == 0.0
    table = hist.spend(by="model")
    assert isinstance(table, SpendTable) and dict(table) == {}
    assert table.total == 0.0 and table.requests == 0 and not table.overlaps
    _assert_same(hist.spend(by="tag"), spend([], None, "tag"))
    assert not (tmp_path / "never-written").exists()  # asking does not create the folder
    with pytest.raises(ValueError, match="by must be"):
        hist.spend(by="week")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="since must be"):
        hist.spend(since=[2026])


def test_a_read_only_folder_answers_by_a_scan(
    mixed: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No spend index and no way to make one (a shared drive): the same answer, by a scan."""
    db = mixed.path / "index.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX records_spend")
    conn.commit()
    expected = {by: spend(mixed.records(), "2026-11-29", by) for by in (None, "day", "tag")}

    def refuse(self: Index) -> sqlite3.Connection:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Index, "_open_writable", refuse)
    fresh = History(mixed.path)
    for by, table in expected.items():
        _assert_same(fresh.spend("2026-11-29", by), table)  # type: ignore[arg-type]
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "records_spend" not in names
    conn.close()


WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from _history_helpers import api_result, body
from cometnb.history import History
h = History(sys.argv[1])
for i in range(int(sys.argv[3])):
    request = body(f"a paper boat {i}", "gpt-image-2", size="1024x1024", quality="low")
    h.record_success(request, api_result(), elapsed_s=0.1, tags=["writer"] if i % 2 else [])
"""


def test_spend_while_another_process_writes(tmp_path: Path) -> None:
    hist = History(tmp_path / "h")
    hist.record_success(_request(0), api_result(usage=USAGE), elapsed_s=1.0)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(hist.path), str(REPO / "tests"), "150"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[SpendTable] = []
    deadline = time.monotonic() + 90
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            table = hist.spend(by="tag")
            assert isinstance(table, SpendTable)
            # One snapshot: the rows and the total agree with each other.
            assert sum(table.counts.values()) == table.requests
            assert table.total == pytest.approx(sum(table.values()), abs=1e-9)
            seen.append(table)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    requests = [t.requests or 0 for t in seen]
    assert requests == sorted(requests)  # never goes back
    assert len(hist) == 151
    for by in (None, "model", "tag"):
        _assert_same(hist.spend(by=by), spend(hist.records(), None, by))  # type: ignore[arg-type]
