"""``cometnb.balance()`` against the simulator's quota endpoint (API_FACTS §11): the documented
shape read, where the URL and the key come from, and the key (which travels in the URL) in no
message, repr, log, file or traceback local."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from conftest import FAKE_KEY, assert_no_key_in_tree

import cometnb
from cometnb import AuthenticationError, Balance, CometError
from cometnb._client.http import KeyInQuery, get
from cometnb._core import settings as _settings
from cometnb._core.budget import (
    BALANCE_KEY_ENV,
    BALANCE_URL_ENV,
    DEFAULT_BALANCE_URL,
    account,
    balance_from_quota,
    balance_url,
)
from cometnb._core.errors import ResponseError
from cometnb._core.secret import Secret
from cometnb.sim import SimServer

OTHER_KEY = "sk-cometnb-balance-only-00c0ffee11d0beef"


@pytest.fixture
def keyed_sim() -> Any:
    """A simulator that accepts only FAKE_KEY (on the image routes and the quota route)."""
    server = SimServer(api_key=FAKE_KEY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_documented_answer_is_read(keyed_sim: SimServer) -> None:
    keyed_sim.quota.total_usd, keyed_sim.quota.used_usd = 41.276, 8.5
    found = cometnb.balance(FAKE_KEY, url=keyed_sim.quota_url)
    assert isinstance(found, Balance)
    assert (found.total_usd, found.used_usd, found.key_remaining_usd) == (41.276, 8.5, None)
    assert found.available_usd == 41.276 and found.as_of.tzinfo is not None
    assert found.keys[0].name == "cometnb-sim" and keyed_sim.quota.asked == 1
    assert str(found).startswith("$41.28 left on the account, $8.50 used, as of ")
    keyed_sim.quota.key_remaining_usd = 2.0
    limited = cometnb.balance(FAKE_KEY, url=keyed_sim.quota_url)
    assert limited.key_remaining_usd == 2.0 and limited.available_usd == 2.0
    assert "($2.00 on this key)" in limited.label
    assert account().last == limited  # the session keeps the newest for its checks


def test_a_wrong_key_is_an_authentication_error(keyed_sim: SimServer) -> None:
    with pytest.raises(AuthenticationError, match="refused the key for the balance") as err:
        cometnb.balance(OTHER_KEY, url=keyed_sim.quota_url)
    assert OTHER_KEY not in str(err.value) and OTHER_KEY not in repr(err.value)


def test_the_key_order(keyed_sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_settings.KEY_ENV, OTHER_KEY)  # the normal key: not the account's here
    with pytest.raises(AuthenticationError):
        cometnb.balance(url=keyed_sim.quota_url)
    monkeypatch.setenv(BALANCE_KEY_ENV, FAKE_KEY)  # the balance key comes before it
    assert cometnb.balance(url=keyed_sim.quota_url).total_usd == 50.0
    with pytest.raises(AuthenticationError):  # and api_key= before both
        cometnb.balance(OTHER_KEY, url=keyed_sim.quota_url)
    monkeypatch.delenv(BALANCE_KEY_ENV)
    monkeypatch.setenv(_settings.KEY_ENV, FAKE_KEY)
    assert cometnb.balance(url=keyed_sim.quota_url).total_usd == 50.0


def test_no_key_at_all_is_refused_before_the_network(sim: SimServer) -> None:
    with pytest.raises(AuthenticationError, match="No CometAPI key is configured"):
        cometnb.balance(url=sim.quota_url)
    assert sim.quota.asked == 0


def test_the_url_order(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BALANCE_URL_ENV, raising=False)
    assert balance_url() == DEFAULT_BALANCE_URL
    monkeypatch.setenv(BALANCE_URL_ENV, "https://env.example/user/quota")
    assert balance_url() == "https://env.example/user/quota"
    _settings.active().balance_url = sim.quota_url  # %config CometImg.balance_url
    assert balance_url() == sim.quota_url
    assert balance_url("https://explicit.example/q") == "https://explicit.example/q"


def test_the_keyless_simulator_answers_its_own_balance(monkeypatch: pytest.MonkeyPatch) -> None:
    from cometnb.sim import leave_simulator, use_if_keyless

    assert use_if_keyless(quiet=True) == "simulator"
    try:
        assert balance_url().endswith("/user/quota")
        assert cometnb.balance().total_usd == 50.0
    finally:
        leave_simulator()


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ("500", "APIError", "answered HTTP 500 for the balance"),
        ("401", "AuthenticationError", "refused the key for the balance (HTTP 401)"),
        ("html", "APIError", "answered HTTP 502"),
        ("not_json", "ResponseError", "did not answer JSON"),
        ("shape", "ResponseError", "without a usable total_quota"),
    ],
)
def test_each_failure_is_one_short_error_without_the_key(
    keyed_sim: SimServer, fault: str, error: str, words: str, tmp_path: Path
) -> None:
    keyed_sim.quota.fault = fault
    with _logged(tmp_path / "debug.log"), pytest.raises(CometError) as err:
        cometnb.balance(FAKE_KEY, url=keyed_sim.quota_url)
    assert type(err.value).__name__ == error and words in str(err.value)
    assert "Nothing was billed" in str(err.value) or fault in ("not_json", "shape")
    _assert_key_nowhere(err.value, err.tb)
    assert_no_key_in_tree(tmp_path)


def test_unreachable_and_slow_endpoints(sim: SimServer, tmp_path: Path) -> None:
    with _logged(tmp_path / "debug.log"), pytest.raises(ResponseError) as err:
        cometnb.balance(FAKE_KEY, url="http://127.0.0.1:9/user/quota")
    assert "could not read the account balance from 127.0.0.1: ConnectError" in str(err.value)
    assert err.value.__context__ is None  # no chained httpx error holding the request
    _assert_key_nowhere(err.value, err.tb)
    sim.quota.fault, sim.quota.delay = "slow", 5.0
    with _logged(tmp_path / "debug.log"), pytest.raises(ResponseError, match="ReadTimeout") as slow:
        cometnb.balance(FAKE_KEY, url=sim.quota_url, timeout=0.3)
    _assert_key_nowhere(slow.value, slow.tb)
    assert_no_key_in_tree(tmp_path)


def test_the_key_travels_only_in_the_request_that_leaves() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"total_quota": 3})

    reply = get(
        "https://query.example/user/quota?start_date=2026-12-01",
        what="the account balance",
        key=Secret(FAKE_KEY),
        key_param="key",
        transport=httpx.MockTransport(answer),
    )
    assert reply.ok and reply.json() == {"total_quota": 3}
    assert seen == [f"https://query.example/user/quota?start_date=2026-12-01&key={FAKE_KEY}"]
    transport = KeyInQuery("key", Secret(FAKE_KEY), httpx.MockTransport(answer))
    assert FAKE_KEY not in repr(transport) and FAKE_KEY not in repr(vars(transport))


def test_a_failing_transport_leaves_no_key_in_any_frame() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ResponseError) as err:
        get(
            "https://query.example/user/quota",
            what="the account balance",
            key=Secret(FAKE_KEY),
            key_param="key",
            transport=httpx.MockTransport(explode),
        )
    _assert_key_nowhere(err.value, err.tb)


def test_balance_from_quota_reads_tolerantly() -> None:
    data = {
        "username": "someone",
        "total_quota": "12.5",
        "total_used_quota": 7,
        "request_count": 1204,
        "keys": [
            {"name": "notebooks", "remain_quota": -1, "used_quota": 5},
            {"name": "ci", "remain_quota": 1.5, "used_quota": 2},
            "junk",
        ],
        "daily_quota": {"2026-12-01": [{"token_name": "ci", "quota_used": 1, "request_count": 3}]},
        "unknown_field": True,
    }
    found = balance_from_quota(data)
    assert (found.total_usd, found.used_usd, found.request_count) == (12.5, 7.0, 1204)
    assert [(k.name, k.remaining_usd) for k in found.keys] == [("notebooks", None), ("ci", 1.5)]
    assert found.key_remaining_usd is None  # several keys: which one asked is not said
    assert balance_from_quota({"success": True, "data": {"total_quota": 2}}).total_usd == 2.0
    for bad in ({"total_quota": float("nan")}, {"total_quota": None}, {}, [1, 2], "x"):
        with pytest.raises(ResponseError):
            balance_from_quota(bad)


# --- helpers -------------------------------------------------------------------------------


class _logged:
    """Every cometnb / httpx / httpcore log record at DEBUG into ``path`` while inside."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path)
        self.loggers = [logging.getLogger(n) for n in ("cometnb", "httpx", "httpcore")]

    def __enter__(self) -> None:
        for logger in self.loggers:
            logger.addHandler(self.handler)
            logger.setLevel(logging.DEBUG)

    def __exit__(self, *exc: object) -> None:
        for logger in self.loggers:
            logger.removeHandler(self.handler)
            logger.setLevel(logging.NOTSET)
        self.handler.close()


def _assert_key_nowhere(error: BaseException, tb: TracebackType | None) -> None:
    """Not in the message, repr, formatted traceback, nor the repr of any frame's locals."""
    text = "".join(traceback.format_exception(type(error), error, tb))
    assert FAKE_KEY not in text and FAKE_KEY not in repr(error) and FAKE_KEY not in str(error)
    seen: set[int] = set()
    node: BaseException | None = error
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        walk = node.__traceback__
        while walk is not None:
            for name, value in walk.tb_frame.f_locals.items():
                shown = _safe_repr(value)
                assert FAKE_KEY not in shown, f"the key is in local {name!r} of {walk.tb_frame}"
            walk = walk.tb_next
        node = node.__context__ or node.__cause__
    assert FAKE_KEY not in str(sys.exc_info())


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a half-built object: not the key
        return ""
