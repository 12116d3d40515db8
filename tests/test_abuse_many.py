"""One failure must not abandon the others (issue 13, item 4).

``generate_many`` returns one :class:`Generation` per request: a failure that is not a
``CometError`` (an ``OSError`` from a full disk, a Pillow error, ``MemoryError``) becomes that
request's ``Generation(status="error")`` with a record, and the other requests go on. Prompts
that cannot be encoded are refused before anything is sent, naming the request and position.
A full disk in a grid keeps every billed copy in one folder and names every file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY

from cometnb._core.errors import ValidationError
from cometnb.history import History
from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(90)

MODEL = "gpt-image-1-mini"


def _client(sim: SimServer, hist: History) -> Any:
    from cometnb._client.client import Client

    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist)


def _requests(count: int) -> list[dict[str, Any]]:
    return [{"prompt": f"harbour number {i}", "model": MODEL} for i in range(count)]


def test_lone_surrogate_in_request_5_of_8_is_refused_before_any_is_sent(
    sim: SimServer, hist: History
) -> None:
    requests = _requests(8)
    requests[4]["prompt"] = "harbour \udc80 number 4"
    with _client(sim, hist) as c, pytest.raises(ValidationError) as info:
        c.generate_many(requests)
    assert info.value.message.startswith("request 4:") and "position 8" in info.value.message
    assert sim.request_count == 0 and len(hist) == 0


@pytest.mark.parametrize(
    "raised",
    [
        MemoryError(),
        OSError(errno.EIO, "Input/output error"),
        UnicodeEncodeError("utf-8", "x", 0, 1, "bad"),
        SyntaxError("broken PNG"),
    ],
    ids=["memory", "oserror", "encoding", "pillow-syntax"],
)
def test_a_non_comet_error_fails_only_its_own_request(
    sim: SimServer, hist: History, raised: BaseException
) -> None:
    original = hist.record_success
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise raised
        return original(*args, **kwargs)

    hist.record_success = flaky  # type: ignore[method-assign]
    with _client(sim, hist) as c:
        gens = c.generate_many(_requests(6), concurrency=2)
    statuses = [g.status for g in gens]
    assert statuses.count("error") == 1 and statuses.count("ok") == 5, statuses
    (failed,) = [g for g in gens if not g.ok]
    assert failed.error is not None and failed.record_id is not None
    assert len(str(failed.error)) < 400 and "billed" in str(failed.error)
    assert sorted(r.status for r in History(hist.path)) == ["error"] + ["ok"] * 5
    assert sim.request_count == 6


def test_full_disk_in_a_grid_keeps_every_copy_in_one_folder(
    sim: SimServer, hist: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(sim, hist) as c:
        c.generate("before the disk filled", model=MODEL)
    sent_before = sim.request_count
    spare = tmp_path / "t"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with _client(sim, hist) as c:
        gens = c.generate_many(_requests(4), concurrency=2)
    assert [g.status for g in gens] == ["error"] * 4
    (folder,) = spare.glob("cometnb-unsaved-*")
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 4
    for gen in gens:
        text = str(gen.error)
        assert str(folder) in text
        assert any(name in text for name in kept)
    assert sim.request_count == sent_before + 4
