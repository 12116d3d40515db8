"""Review of issue 17 (batches): reproductions of defects found in review.

Each test states the behaviour the contract asks for (DESIGN.md §1 "Batches": a re-run "never
resends one that may have been billed"); each failed on 89ce3df, where the review found it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cometnb._client.batch_run import batch, run_batch
from cometnb._client.client import Client
from cometnb._core import settings as _settings
from cometnb._core.budget import BudgetLimits, SpendGuard, ledger
from cometnb._core.errors import BudgetError
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import estimate
from cometnb._storage.batches import BatchStore
from cometnb._storage.folder import History as _History
from cometnb.history import History
from cometnb.sim import SimServer
from tests.client.test_batch import CATALOGUE, client_for, sent_prompts
from tests.conftest import FAKE_KEY

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL = "gpt-image-2"
FIELDS = {"model": MODEL, "size": "1024x1024", "quality": "low"}
sent = sent_prompts


def test_a_billed_answer_whose_store_failed_is_not_sent_again(
    sim: SimServer, hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answered with an image (billed), then writing it failed (disk full): the
    client's own hint says "The generation was billed", the ledger charges its estimate, but
    the batch marks the item ``failed`` -- and failed items are sent again on the next run."""
    real = _History.record_success
    calls = {"n": 0}

    def full_disk(self: _History, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_History, "record_success", full_disk)
    client = client_for(sim, hist)
    first = batch(
        CATALOGUE[:2], name="disk", client=client, progress=False, concurrency=1, **FIELDS
    )
    print("after run 1:", first, [first.state(i) for i in first.items])
    print("ledger after run 1:", ledger().usd, "error:", first.to_dataframe()["error"][0])
    mark = sim.request_count
    again = batch(CATALOGUE[:2], name="disk", client=client, progress=False, **FIELDS)
    print("sent by run 2:", sent(sim, mark))
    assert sent(sim, mark) == []  # the billed one is not paid for a second time
    assert again.state(again.items[0]) == "uncertain"


WORKER = textwrap.dedent(
    """
    import json, sys
    from cometnb._client.batch_run import batch
    from cometnb._client.client import Client
    from cometnb.history import History
    base_url, folder, items = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = Client(api_key="sk-worker-0000000000000000", base_url=base_url,
                    history=History(folder))
    b = batch(items, name="shop", client=client, concurrency=2, progress=False,
              model="gpt-image-2", size="1024x1024", quality="low")
    print(repr(b))
    """
)


def test_two_processes_running_one_batch_never_send_an_item_twice(tmp_path: Path) -> None:
    """Two kernels (or a kernel and a script) run the same named batch at the same time."""
    prompts = [f"catalogue item {i:02d}: a product photo on white" for i in range(12)]
    folder = tmp_path / "hist"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with SimServer(latency=0.3) as sim:
        args = [sys.executable, "-c", WORKER, sim.base_url, str(folder), json.dumps(prompts)]
        first = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while sim.request_count < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        out1, _ = first.communicate(timeout=90)
        out2, err2 = second.communicate(timeout=90)
        posts = Counter(sent(sim))
    print("run 1:", out1.strip())
    print("run 2:", out2.strip())
    twice = sorted(p for p, n in posts.items() if n > 1)
    print(f"{sum(posts.values())} POSTs for {len(prompts)} items; sent twice: {len(twice)}")
    assert twice == []
    assert "12 done" in out1  # the first run is untouched by the second
    assert second.returncode != 0 and "is already running in another kernel or process" in err2
    assert "nothing was sent" in err2


def test_an_item_the_budget_stops_is_pending_even_if_it_failed_before(
    sim: SimServer, hist: History
) -> None:
    client = client_for(sim, hist)
    sim.fault("503", times=3)  # item 0: 503 three times (certainly not billed): failed
    first = batch(CATALOGUE, name="b", client=client, progress=False, concurrency=1, **FIELDS)
    assert [first.state(i) for i in first.items] == ["failed", "done", "done", "done"]

    def nothing_left(requests: object) -> SpendGuard:  # the budget stops every item
        return SpendGuard(BudgetLimits(cell_budget=0.0), ledger=ledger())

    b = run_batch(
        CATALOGUE, name="b", client=client, progress=False, check=nothing_left, defaults=FIELDS
    )
    print(b.notes, repr(b))
    assert b.notes[0].startswith("Budget reached: 1 of 4 items were not sent")
    assert b.counts()["pending"] == 1 and b.failed == []  # as the note says


def test_resent_after_interrupt_lists_only_items_actually_sent(
    sim: SimServer, hist: History
) -> None:
    """An item a killed run left in flight, asked to be resent (retry_billed=True), that the
    budget then stops: it was not sent, yet it is reported as resent."""
    from cometnb._client.batch import KILLED_IN_FLIGHT, load_items

    keys = [i.key for i in load_items(CATALOGUE[:1], FIELDS)]
    store = BatchStore(hist.path)
    store.begin("r", keys)
    store.mark("r", keys[0], "uncertain", error=KILLED_IN_FLIGHT)  # as a kill -9 leaves it

    def nothing_left(requests: object) -> SpendGuard:
        return SpendGuard(BudgetLimits(cell_budget=0.0), ledger=ledger())

    client = client_for(sim, hist)
    b = run_batch(
        CATALOGUE[:1],
        name="r",
        client=client,
        progress=False,
        retry_billed=True,
        check=nothing_left,
        defaults=FIELDS,
    )
    print("sent:", sent(sim), "resent_after_interrupt:", b.resent_after_interrupt, b.notes)
    assert sent(sim) == []
    assert b.resent_after_interrupt == []  # nothing was sent again


def test_python_callers_are_not_told_about_a_cell_flag(sim: SimServer, hist: History) -> None:
    """``cometnb.batch`` is Python: its refusal should not tell the caller to use --budget."""
    _settings.active().budget = 0.5 * (estimate(ImageRequest(CATALOGUE[0], **FIELDS)).usd or 0)
    with pytest.raises(BudgetError) as info:
        batch(CATALOGUE, name="m", client=client_for(sim, hist), progress=False, **FIELDS)
    print(str(info.value))
    assert "--budget" not in str(info.value)
    assert "%config CometImg.budget" in str(info.value)


def test_no_post_leaves_when_its_sending_mark_cannot_be_committed(
    sim: SimServer, hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 'sending' mark is what keeps a killed run from paying twice; the client's notify()
    swallows the handler's exception, so the POST goes out with the item still 'pending' (a
    kill -9 now, and the next run sends it again)."""
    import sqlite3

    real = BatchStore.mark

    def locked(self: BatchStore, batch: str, key: str, state: str, **kw: object) -> None:
        if state == "sending":
            raise sqlite3.OperationalError("database is locked")
        real(self, batch, key, state, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(BatchStore, "mark", locked)
    client = client_for(sim, hist)
    b = batch(CATALOGUE[:1], name="lock", client=client, progress=False, **FIELDS)
    seen = sent(sim)
    print("POSTs sent while 'sending' could not be committed:", seen, repr(b))
    assert seen == []  # not sent: it could not be marked as in flight


def test_a_spent_quota_stops_the_batch_and_leaves_the_rest_pending(
    sim: SimServer, hist: History, capsys: pytest.CaptureFixture[str]
) -> None:
    """Build item 2: a quota-exhausted 429 stops at once; in a batch, the items not sent yet
    stay pending instead of each being sent to fail the same way."""
    prompts = [f"catalogue item {i:02d}: a product photo" for i in range(20)]
    sim.fault("latency", times=2, seconds=0)  # two items go through
    sim.fault("429", quota=True, times=100)  # then the balance is gone
    client = client_for(sim, hist)
    b = batch(prompts, name="q", client=client, concurrency=2, **FIELDS)
    counts = b.counts()
    assert counts["done"] == 2 and counts["done"] + counts["failed"] == sim.request_count
    assert sim.request_count <= 2 + 2  # what was in flight when the quota ran out, no more
    assert counts["pending"] == 20 - sim.request_count
    assert len(b.notes) == 1 and b.notes[0].startswith("Stopped early: HTTP 429")
    assert f"{counts['pending']} items were not sent and stay pending" in b.notes[0]
    assert "Stopped early" in capsys.readouterr().err
    sim.reset()  # the account is topped up (this also clears the request log)
    again = batch(prompts, name="q", client=client, progress=False, **FIELDS)
    assert len(sent(sim)) == 20 - 2  # the failed and the held-back items, nothing done
    assert again.counts()["done"] == 20


def test_a_refused_key_stops_the_batch(sim: SimServer, hist: History) -> None:
    refused = {"error": {"message": "Invalid token", "type": "invalid_request_error"}}
    sim.fault("http", times=100, status=401, body=refused)
    client = client_for(sim, hist)
    b = batch(CATALOGUE, name="k", client=client, concurrency=1, progress=False, **FIELDS)
    assert sim.request_count == 1 and b.counts()["pending"] == 3
    assert b.notes[0].startswith("Stopped early: HTTP 401")


def test_a_storing_failure_is_marked_as_may_be_billed() -> None:
    from cometnb._client.batch import may_be_billed
    from cometnb._client.client import storing_failure, unexpected
    from cometnb._core.errors import CometError

    assert may_be_billed(storing_failure(OSError(28, "No space left on device")))
    assert may_be_billed(storing_failure(CometError("could not save the generated image")))
    assert may_be_billed(unexpected(RuntimeError("boom"), "sending"))


# --- the second review ----------------------------------------------------------------------


def test_an_unusable_key_stops_the_batch_charges_nothing_and_sends_nothing(
    sim: SimServer, hist: History
) -> None:
    client = Client(api_key="sk-abc def", base_url=sim.base_url, history=hist)
    b = batch(CATALOGUE, name="key", client=client, progress=False, concurrency=1, **FIELDS)
    assert sim.request_count == 0 and ledger().usd == 0.0 and hist.spend() == 0.0
    assert b.counts() == {"done": 0, "failed": 1, "uncertain": 0, "pending": 3}
    assert b.notes[0].startswith("Stopped early: The API key contains a space")


def test_a_held_back_retry_after_a_billed_attempt_stays_uncertain(
    sim: SimServer, hist: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 met a 504 (may be billed; the client may retry it), attempt 2 could not be
    recorded as in flight, so it was held back: the item may still have been billed."""
    real = BatchStore.mark
    sends = {"n": 0}

    def flaky(self: BatchStore, name: str, key: str, state: str, **kw: Any) -> None:
        if state == "sending":
            sends["n"] += 1
            if sends["n"] == 2:
                raise sqlite3.OperationalError("database is locked")
        real(self, name, key, state, **kw)

    monkeypatch.setattr(BatchStore, "mark", flaky)
    sim.fault("504", html=False)
    client = Client(
        api_key=FAKE_KEY, base_url=sim.base_url, history=hist, retry_billed=True, max_retries=2
    )
    b = batch(CATALOGUE[:1], name="rb", client=client, progress=False, **FIELDS)
    assert sim.request_count == 1 and b.state(b.items[0]) == "uncertain"
    mark = sim.request_count
    batch(CATALOGUE[:1], name="rb", client=client, progress=False, **FIELDS)
    assert sent(sim, mark) == []  # not paid twice


def test_a_load_balancer_429_is_a_rate_limit_not_a_spent_balance() -> None:
    from cometnb._client.exchange import is_quota_exhausted

    assert not is_quota_exhausted({"message": "Upstream load balancer is saturated, retry"})
    assert is_quota_exhausted({"message": "Your account balance is exhausted"})
    assert is_quota_exhausted({"message": "You exceeded your current quota"})


def test_a_second_run_in_this_kernel_is_told_so(tmp_path: Path) -> None:
    from cometnb._core.errors import BatchBusyError
    from cometnb._storage.batches import hold_batch

    with (
        hold_batch(tmp_path, "shop"),
        pytest.raises(BatchBusyError, match="in this kernel"),
        hold_batch(tmp_path, "shop"),
    ):
        pass
    with hold_batch(tmp_path, "cat\udc80"):  # a name Python can hold but UTF-8 cannot
        pass
    with hold_batch(tmp_path, "shop"):  # released
        pass


def test_an_interrupted_run_keeps_the_lock_until_its_tasks_are_done(tmp_path: Path) -> None:
    import threading

    from cometnb._core.errors import BatchBusyError
    from cometnb._storage.batches import hold_batch

    finished = threading.Event()
    with hold_batch(tmp_path, "shop") as hold:
        hold.release_after(finished)
    with pytest.raises(BatchBusyError), hold_batch(tmp_path, "shop"):
        pass
    finished.set()
    deadline = time.monotonic() + 10
    while True:
        try:
            with hold_batch(tmp_path, "shop"):
                break
        except BatchBusyError:
            assert time.monotonic() < deadline, "the lock was never released"
            time.sleep(0.02)
