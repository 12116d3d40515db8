"""The LOW list of issue 21, point 5.

Keys too short to be real are refused before sending; a key the server echoes is scrubbed from
every attribute of the error; the key and lone surrogates are refused as a batch name or item
id; after a result could not be stored for lack of space, nothing more is sent.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY
from test_faults_disk import _fill, _seed, tmpfs

from cometnb._client.batch_run import batch
from cometnb._client.client import Client
from cometnb._core.errors import APIError, AuthenticationError, CometError, ValidationError
from cometnb._core.secret import MIN_KEY_CHARS
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

MODEL = "gpt-image-1-mini"


# --- short keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sk-short", "sk-fifteen-chr1", "sk-nineteen-chars1"])
def test_a_key_too_short_to_be_real_is_refused_before_sending(
    sim: SimServer, tmp_path: Path, key: str
) -> None:
    assert len(key) < MIN_KEY_CHARS == 20
    hist = History(tmp_path / "h")
    with (
        Client(api_key=key, base_url=sim.base_url, history=hist) as c,
        pytest.raises(AuthenticationError) as info,
    ):
        c.generate("a fox", model=MODEL)
    assert "too short" in str(info.value) and key not in str(info.value)
    assert info.value.may_be_billed is False
    assert sim.request_count == 0
    for path in (tmp_path / "h").rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"the short key is in {path}"


def test_a_key_of_20_characters_is_sent(sim: SimServer, tmp_path: Path) -> None:
    with Client(api_key="sk-" + "a" * 17, base_url=sim.base_url, history=False) as c:
        assert c.generate("a fox", model=MODEL).ok


# --- an echoed key ----------------------------------------------------------------------------


def test_an_echoed_key_is_in_no_attribute_of_the_error(sim: SimServer, tmp_path: Path) -> None:
    echoed = {
        "error": {
            "message": f"Invalid token {FAKE_KEY}",
            "code": f"bad_key:{FAKE_KEY}",
            "param": f"Authorization: Bearer {FAKE_KEY}",
            "type": f"auth {FAKE_KEY}",
        }
    }
    sim.fault("http", status=401, body=echoed)
    with _client(sim, tmp_path) as c, pytest.raises(APIError) as info:
        c.generate("a fox", model=MODEL)
    error = info.value
    for name, value in vars(error).items():
        assert FAKE_KEY not in repr(value), f"the key is in error.{name}"
    assert error.param is not None and "[REDACTED]" in error.param
    assert error.code is not None and "[REDACTED]" in error.code


def test_an_attribute_set_later_is_scrubbed_too() -> None:
    from cometnb._core.secret import Secret

    Secret(FAKE_KEY)  # registers it
    error = CometError("failed")
    error.hint = f"try {FAKE_KEY}"
    error.extra = {"nested": [FAKE_KEY]}  # type: ignore[attr-defined]
    assert FAKE_KEY not in repr(vars(error))


# --- batch names and item ids -----------------------------------------------------------------


def _client(sim: SimServer, tmp_path: Path) -> Client:
    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=History(tmp_path / "h"))


@pytest.mark.parametrize(
    ("name", "items", "words"),
    [
        (FAKE_KEY, ["a fox"], "name contains your API key"),
        ("shop", [{"id": FAKE_KEY, "prompt": "a fox"}], "id[0] contains your API key"),
        ("shop\udc80", ["a fox"], "lone surrogate"),
        ("shop", [{"id": "item\ud800", "prompt": "a fox"}], "lone surrogate"),
    ],
    ids=["key-as-name", "key-as-id", "surrogate-name", "surrogate-id"],
)
def test_key_or_lone_surrogate_as_batch_name_or_item_id_is_refused(
    sim: SimServer, tmp_path: Path, name: str, items: list[Any], words: str
) -> None:
    with _client(sim, tmp_path) as client, pytest.raises(ValidationError) as info:
        batch(items, name=name, client=client, progress=False, model=MODEL)
    text = str(info.value)
    assert words in text and FAKE_KEY not in text
    text.encode("utf-8")  # printable
    assert sim.request_count == 0
    assert (
        not any((tmp_path / "h").rglob("batches.sqlite3"))
        or FAKE_KEY.encode() not in (tmp_path / "h" / "batches.sqlite3").read_bytes()
    )


# --- a full disk: nothing more is sent --------------------------------------------------------


def test_after_a_full_disk_nothing_more_is_sent(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "full"
    elsewhere = tmp_path / "t"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    with tmpfs(folder) as mounted:
        if not mounted:
            pytest.skip("needs a tmpfs to fill (root and mount)")
        _seed(sim, folder)
        filler = _fill(folder)
        sent_before = sim.request_count
        requests = [{"prompt": f"harbour {i}", "model": MODEL} for i in range(5)]
        with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=History(folder)) as c:
            gens = c.generate_many(requests, concurrency=1)
            # The next request leaves while one is being stored (its slot is free once the
            # answer arrived), so one more may be on the wire; none after that.
            sent = sim.request_count - sent_before
            assert sent <= 2, f"{sent} requests were sent to a full disk"
            assert not gens[0].ok and "copy" in str(gens[0].error)  # billed: kept elsewhere
            for gen in gens[sent:]:
                assert "nothing more was sent" in str(gen.error)
                assert gen.error.may_be_billed is False  # type: ignore[union-attr]
            with pytest.raises(CometError, match="nothing more was sent"):
                c.generate("still full", model=MODEL)
            assert sim.request_count - sent_before == sent
            filler.unlink()  # room again: the history works again
            assert c.generate("after cleaning up", model=MODEL).ok


# --- an index that lost its rows --------------------------------------------------------------


def test_an_empty_index_beside_record_documents_is_reported(
    sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "h"
    hist = History(folder)
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        made = [c.generate(f"harbour {i}", model=MODEL).record_id for i in range(3)]
    hist.close()
    (folder / "index.sqlite3").write_bytes(b"")  # zero bytes: every record hidden
    for extra in ("index.sqlite3-wal", "index.sqlite3-shm"):
        (folder / extra).unlink(missing_ok=True)
    caplog.set_level("WARNING", logger="cometnb")
    reopened = History(folder)
    warned = [r.getMessage() for r in caplog.records if "lists no records" in r.getMessage()]
    assert warned and ".repair()" in warned[0], caplog.text
    assert len(reopened) == 0
    reopened.repair()
    assert sorted(r.id for r in History(folder)) == sorted(made)


def test_a_fresh_history_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="cometnb")
    assert len(History(tmp_path / "new")) == 0
    assert "lists no records" not in caplog.text


# --- kill -9 while a POST is on the wire --------------------------------------------------------


@pytest.mark.parametrize("how", ["generate", "generate_many"])
def test_kill_9_during_a_post_leaves_a_may_be_billed_entry(
    sim: SimServer, tmp_path: Path, how: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "h"
    call = (
        "c.generate('a lighthouse', model='gpt-image-1-mini')"
        if how == "generate"
        else "c.generate_many([{'prompt': 'a lighthouse', 'model': 'gpt-image-1-mini'}])"
    )
    script = (
        "from cometnb._client.client import Client\n"
        "from cometnb.history import History\n"
        f"c = Client(api_key={FAKE_KEY!r}, base_url={sim.base_url!r}, "
        f"history=History({str(folder)!r}))\n"
        f"{call}\n"
    )
    sim.fault("latency", seconds=30)
    root = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": root})
    try:
        deadline = time.monotonic() + 30
        while sim.request_count < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.request_count == 1, "the child never sent its request"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    hist = History(folder)
    assert len(hist) == 0  # the answer never came: nothing was recorded
    report = hist.repair()
    assert len(report.in_flight) == 1 and "in flight" in str(report)
    (record,) = list(History(folder))
    assert record.status == "error" and record.prompt == "a lighthouse"
    assert "on the wire" in (record.error or "") and "billed" in str(record.error_info)
    assert (record.cost.usd or 0) > 0  # may have been billed: charged its estimate
    assert not History(folder).repair().in_flight  # recorded once


def test_a_finished_request_leaves_no_in_flight_row(sim: SimServer, tmp_path: Path) -> None:
    from cometnb._storage.batches import REQUESTS, BatchStore

    hist = History(tmp_path / "h")
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        assert c.generate("a fox", model=MODEL).ok
        assert all(not g.ok or g.ok for g in c.generate_many([{"prompt": "b", "model": MODEL}]))
    store = BatchStore(tmp_path / "h")
    try:
        assert store.states(REQUESTS) == {}
    finally:
        store.close()
    assert not hist.repair().in_flight
