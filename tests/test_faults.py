"""Faults through the Python API: every simulator fault ends in a safe retry or one short error,
the history records it, and the simulator saw exactly as many requests as the retry policy
allows (no silent double billing).

The same fault table (``_faults.CASES``) drives the magic and panel tests in
``test_faults_frontends.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _faults import (
    CASES,
    FAILING,
    FAST_TIMEOUT,
    Case,
    arm,
    assert_clean,
    assert_short_error,
    history_statuses,
)
from conftest import FAKE_KEY

if TYPE_CHECKING:
    from cometnb._client.client import Client
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def make_client(base_url: str, history_dir: Path, **options: Any) -> Iterator[Client]:
    """A client on ``base_url`` writing to ``history_dir``, closed afterwards."""
    from cometnb._client.client import Client
    from cometnb.history import History

    c = Client(api_key=FAKE_KEY, base_url=base_url, history=History(history_dir), **options)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def fast_client(sim: SimServer, history_dir: Path) -> Iterator[Client]:
    """A client whose read timeout is short enough for the "hang" fault."""
    with make_client(sim.base_url, history_dir, timeout=FAST_TIMEOUT) as c:
        yield c


def _generate(client: Client, case: Case, prompt: str = "a lighthouse in fog") -> object:
    return client.generate(prompt, model=case.model, **case.fields)


@pytest.mark.parametrize("case", [c for c in CASES if c.ok], ids=lambda c: c.id)
def test_safe_fault_is_retried_once_and_succeeds(
    case: Case, sim: SimServer, fast_client: Client, history_dir: Path, tmp_path: Path
) -> None:
    arm(sim, case)
    start = time.monotonic()
    gen = _generate(fast_client, case)
    waited = time.monotonic() - start
    assert gen.ok and gen.images and gen.images[0].path.exists()  # type: ignore[attr-defined]
    assert sim.request_count == case.sent
    assert waited >= case.min_wait_s
    assert history_statuses(history_dir) == ["ok"]  # one record per request, not per attempt
    assert_clean(tmp_path, repr(gen))


@pytest.mark.parametrize("case", FAILING, ids=lambda c: c.id)
def test_fault_ends_in_one_short_error_sent_as_allowed(
    case: Case, sim: SimServer, fast_client: Client, history_dir: Path, tmp_path: Path
) -> None:
    from cometnb import CometError
    from cometnb.history import History

    arm(sim, case)
    with pytest.raises(CometError) as info:
        _generate(fast_client, case)
    assert sim.request_count == case.sent, f"{case.kind}: the simulator saw the wrong count"
    assert_short_error(str(info.value), case)
    records = list(History(history_dir))
    assert [r.status for r in records] == ["error"]
    assert records[0].error, "the failed record has no error text"
    assert_short_error(str(records[0].error), case)
    assert_clean(tmp_path, str(info.value), repr(info.value), repr(records[0].error))


def test_render_traceback_hook_is_one_line(sim: SimServer, fast_client: Client) -> None:
    """IPython shows ``_render_traceback_`` instead of a traceback: it must be one line."""
    from cometnb import CometError

    sim.fault("500")
    with pytest.raises(CometError) as info:
        fast_client.generate("a bridge", model="gpt-image-1-mini")
    lines = info.value._render_traceback_()
    assert len(lines) == 1
    assert_short_error(lines[0], words=("500",))


def test_billed_fault_retried_once_when_allowed(
    sim: SimServer, history_dir: Path, tmp_path: Path
) -> None:
    """``retry_billed=True`` allows exactly one retry of a possibly billed failure."""
    from cometnb import CometError

    sim.fault("502", times=5)
    with (
        make_client(sim.base_url, history_dir, retry_billed=True) as c,
        pytest.raises(CometError) as info,
    ):
        c.generate("a bridge", model="gpt-image-1-mini")
    assert sim.request_count == 2
    assert_short_error(str(info.value), words=("502", "billed"))
    assert_clean(tmp_path)


def test_max_retries_setting_caps_safe_retries(
    sim: SimServer, history_dir: Path, tmp_path: Path
) -> None:
    from cometnb import RateLimitError

    sim.fault("429", times=5, retry_after=0.01)
    with make_client(sim.base_url, history_dir, max_retries=1) as c, pytest.raises(RateLimitError):
        c.generate("a bridge", model="gpt-image-1-mini")
    assert sim.request_count == 2
    assert history_statuses(history_dir) == ["error"]
    assert_clean(tmp_path)


def test_connect_error_is_retried_then_short(tmp_path: Path, history_dir: Path) -> None:
    """Nothing listens on the port: connect errors are safe, retried, then one short error."""
    import socket

    from cometnb import CometError

    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    url = f"http://127.0.0.1:{port}/v1"
    with make_client(url, history_dir, max_retries=1) as c, pytest.raises(CometError) as info:
        c.generate("a bridge", model="gpt-image-1-mini")
    assert time.monotonic() - start >= 0.3  # the one retry waited its backoff
    assert_short_error(str(info.value), words=("connect", "connection", "refused", "reach"))
    assert history_statuses(history_dir) == ["error"]
    assert_clean(tmp_path, str(info.value))


def test_generate_many_isolates_failures_and_sends_each_once(
    sim: SimServer, client: Client, hist: object, tmp_path: Path
) -> None:
    """One 500 among several requests fails only its own cell; nothing is sent twice."""
    from collections import Counter

    from cometnb import ImageRequest

    sim.fault("500")
    prompts = [f"tile {i}" for i in range(4)]
    gens = client.generate_many(
        [ImageRequest(p, model="gpt-image-1-mini") for p in prompts], concurrency=2
    )
    assert [g.prompt for g in gens] == prompts  # input order kept
    assert sum(not g.ok for g in gens) == 1
    failed = next(g for g in gens if not g.ok)
    assert_short_error(str(failed.error), words=("500",))
    assert sim.request_count == 4
    assert Counter(b["prompt"] for b in sim.requests) == Counter(prompts)
    assert sorted(r.status for r in hist) == ["error", "ok", "ok", "ok"]  # type: ignore[attr-defined]
    assert_clean(tmp_path, *(repr(g) for g in gens))


def test_earlier_records_survive_a_failure(
    sim: SimServer, client: Client, history_dir: Path, tmp_path: Path
) -> None:
    """A failure after successes leaves every earlier record and file loadable."""
    from cometnb import CometError

    first = client.generate("first", model="gpt-image-1-mini")
    sim.fault("corrupt_b64")
    with pytest.raises(CometError):
        client.generate("second", model="gpt-image-1-mini")
    from cometnb.history import History

    reopened = History(history_dir)
    assert [r.status for r in reopened] == ["ok", "error"]
    assert reopened[0].images[0].path.read_bytes() == first.images[0].data
    assert_clean(tmp_path)
