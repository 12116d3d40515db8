"""Resumable batches (cometnb._client.batch_run / batch / batch_items, _storage.batches).

Run against the simulator. The resume test kills a batch with SIGKILL in a subprocess midway and
checks, from the simulator's request log, that the next run sends exactly what was not done.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cometnb._client.batch import load_items, may_be_billed, request_key
from cometnb._client.batch_run import batch
from cometnb._client.client import Client
from cometnb._client.exchange import Send, Sleep, request_steps
from cometnb._client.retry import Failure, RetryPolicy
from cometnb._core.billing import BillingRisk
from cometnb._core.errors import APIError, ResponseError, ValidationError
from cometnb._core.generations import ClientEvent, ImageRequest
from cometnb._core.prices import Cost
from cometnb._core.secret import Secret
from cometnb._storage.batches import BatchStore
from cometnb.history import History
from cometnb.sim import SimServer
from tests.conftest import FAKE_KEY

ROOT = Path(__file__).resolve().parent.parent
MODEL, SIZE = "gpt-image-2", "816x816"
CATALOGUE = [
    "a ceramic mug with a fox glaze, studio light",
    "a linen tote bag printed with ferns, on a wooden table",
    "a brass desk lamp with a green shade, evening light",
    "a pair of wool socks with a mountain pattern, flat lay",
]


def client_for(sim: SimServer, history: History) -> Client:
    return Client(api_key=FAKE_KEY, base_url=sim.base_url, history=history)


def sent_prompts(sim: SimServer, since: int = 0) -> list[str]:
    """Prompts of the POSTs received; a body the kill cut short (the simulator could not even
    parse it, so nothing was generated) is not a sent request."""
    return [body["prompt"] for body in sim.requests[since:] if "prompt" in body]


# --- reading items --------------------------------------------------------------------------


def test_items_of_every_kind_get_stable_keys_fields_and_tags(tmp_path: Path) -> None:
    rows = [
        "a red fox in snow",
        {"id": "sku-17", "prompt": "a teapot", "size": "1024x1024", "sku": "A17", "tags": "new"},
        ImageRequest("an owl at dusk", model="gpt-image-1-mini"),
    ]
    items = load_items(rows, {"model": MODEL, "quality": "low", "tags": ["catalogue"]})
    first, second, third = items
    assert first.key == request_key(first.request.to_body()) and first.key.startswith("r-")
    assert first.request.to_body() == {"model": MODEL, "prompt": rows[0], "quality": "low"}
    assert second.key == "sku-17" and second.request.fields["size"] == "1024x1024"
    assert second.tags == ("catalogue", "new", "sku=A17")
    assert third.request.model == "gpt-image-1-mini" and third.request.fields["quality"] == "low"
    again = load_items(rows, {"model": MODEL, "quality": "low", "tags": ["catalogue"]})
    assert [i.key for i in again] == [i.key for i in items]


def test_duplicate_prompts_are_told_apart_and_duplicate_ids_refused() -> None:
    items = load_items(["a fox", "a fox"], {"model": MODEL})
    assert items[1].key == f"{items[0].key}#2"
    with pytest.raises(ValidationError, match="id 'x' is used twice"):
        load_items([{"id": "x", "prompt": "a"}, {"id": "x", "prompt": "b"}], {"model": MODEL})


def test_csv_jsonl_and_dataframe_inputs(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    csv_path = tmp_path / "catalogue.csv"
    csv_path.write_text("id,prompt,n,colour\nm1,a mug,2,blue\nm2,a lamp,,\n", encoding="utf-8")
    jsonl = tmp_path / "catalogue.jsonl"
    jsonl.write_text('{"id": "m1", "prompt": "a mug", "n": 2, "colour": "blue"}\n\n"a lamp"\n')
    frame = pd.DataFrame({"id": ["m1", "m2"], "prompt": ["a mug", "a lamp"], "n": [2, None]})
    from_csv = load_items(csv_path, {"model": MODEL})
    from_jsonl = load_items(str(jsonl), {"model": MODEL})
    from_frame = load_items(frame, {"model": MODEL})
    assert from_csv[0].request.fields == {"n": 2} and from_csv[0].tags == ("colour=blue",)
    assert from_csv[1].request.fields == {} and from_csv[1].tags == ()
    assert from_jsonl[0].request.fields == {"n": 2} and from_jsonl[1].request.prompt == "a lamp"
    assert from_frame[0].request.fields == {"n": 2} and "n" not in from_frame[1].request.fields


def test_unusable_items_are_refused_naming_the_item(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"item 1 \(id 'b'\): has no prompt"):
        load_items([{"id": "a", "prompt": "x"}, {"id": "b"}], {"model": MODEL})
    with pytest.raises(ValidationError, match=r"item 0: .*size"):
        load_items(["a fox"], {"model": MODEL, "size": "13x13"})
    with pytest.raises(ValidationError, match="single str"):
        load_items("a fox", {"model": MODEL})
    with pytest.raises(ValidationError, match="does not exist"):
        load_items(tmp_path / "missing.csv", {"model": MODEL})


def test_may_be_billed() -> None:
    assert may_be_billed(APIError("gateway", status=504))
    assert not may_be_billed(APIError("overloaded", status=503))
    assert not may_be_billed(APIError("bad", status=400))
    assert may_be_billed(APIError("No response from h within 5 s (read timeout)."))
    assert not may_be_billed(APIError("Could not connect to h: connection refused."))
    assert may_be_billed(ResponseError("cut off"))


# --- running --------------------------------------------------------------------------------


def test_batch_runs_in_input_order_and_a_rerun_sends_nothing(
    sim: SimServer, hist: History, tmp_path: Path
) -> None:
    client = client_for(sim, hist)
    b = batch(CATALOGUE, name="shop", client=client, progress=False, model=MODEL, size=SIZE)
    assert [r.prompt for r in b.results if r is not None] == CATALOGUE
    assert b.counts() == {"done": 4, "failed": 0, "uncertain": 0, "pending": 0}
    assert all("batch:shop" in r.tags for r in b.done)
    assert repr(b) == "<Batch 'shop': 4 done, 0 failed, 0 uncertain, 0 pending of 4>"
    before = sim.request_count
    again = batch(CATALOGUE, name="shop", client=client, progress=False, model=MODEL, size=SIZE)
    assert sim.request_count == before
    assert [r.id for r in again.done] == [r.id for r in b.done]
    frame = again.to_dataframe()
    assert list(frame["state"]) == ["done"] * 4 and frame["image_path"].notna().all()
    out = again.export(tmp_path / "shop.jsonl")
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4
    assert isinstance(again.cost, Cost) and (again.cost.usd is None or again.cost.usd >= 0)


def test_failures_not_billed_are_sent_again_and_uncertain_ones_only_when_asked(
    sim: SimServer, hist: History
) -> None:
    client = client_for(sim, hist)
    sim.fault("moderation")  # refused: not billed
    sim.fault("504", html=False)  # after sending: may be billed
    b = batch(CATALOGUE, name="mixed", client=client, progress=False, concurrency=1, model=MODEL)
    assert b.counts() == {"done": 2, "failed": 1, "uncertain": 1, "pending": 0}
    uncertain = b.uncertain[0].request.prompt
    assert uncertain == CATALOGUE[1] and len(b.failed) == 2
    mark = sim.request_count
    b = batch(CATALOGUE, name="mixed", client=client, progress=False, model=MODEL)
    assert sent_prompts(sim, mark) == [CATALOGUE[0]]  # the refused one, not the uncertain one
    assert b.counts() == {"done": 3, "failed": 0, "uncertain": 1, "pending": 0}
    mark = sim.request_count
    b = batch(
        CATALOGUE, name="mixed", client=client, progress=False, retry_billed=True, model=MODEL
    )
    assert sent_prompts(sim, mark) == [uncertain]
    assert b.counts()["done"] == 4


def test_validation_happens_before_anything_is_sent(sim: SimServer, hist: History) -> None:
    with pytest.raises(ValidationError, match="item 2"):
        batch(
            [*CATALOGUE[:2], {"prompt": "x", "n": 99}],
            name="bad",
            client=client_for(sim, hist),
            model=MODEL,
        )
    assert sim.request_count == 0
    with pytest.raises(ValidationError, match="needs a name"):
        batch(CATALOGUE, name=" ", client=client_for(sim, hist))


def test_a_batch_needs_a_history(sim: SimServer) -> None:
    client = Client(api_key=FAKE_KEY, base_url=sim.base_url, history=False)
    with pytest.raises(ValidationError, match="needs a client with a history"):
        batch(CATALOGUE, name="x", client=client, model=MODEL)
    assert sim.request_count == 0


def test_progress_bar_reports_done_and_failed(
    sim: SimServer, hist: History, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.fault("moderation")
    batch(CATALOGUE, name="bar", client=client_for(sim, hist), concurrency=1, model=MODEL)
    err = capsys.readouterr().err
    assert "batch bar" in err and "4/4" in err and "failed=1" in err


# --- an interrupt (Ctrl-C, the notebook's stop button) -------------------------------------


def _interrupt_when(ready: Callable[[], bool]) -> threading.Event:
    """Deliver SIGINT to this process (as Jupyter's interrupt does) once ``ready()`` (or after
    a bounded wait); the event says ``ready()`` was seen true before the interrupt."""
    seen = threading.Event()

    def interrupt() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if ready():
                seen.set()
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    return seen


def test_an_interrupt_leaves_the_request_in_flight_uncertain_and_the_queued_ones_pending(
    sim: SimServer, hist: History, capsys: pytest.CaptureFixture[str]
) -> None:
    client = client_for(sim, hist)
    sim.fault("hang", seconds=30)  # the first POST gets no answer: it is in flight
    seen = _interrupt_when(lambda: sim.request_count >= 1)
    with pytest.raises(KeyboardInterrupt):
        batch(CATALOGUE, name="cut", client=client, concurrency=1, progress=False, model=MODEL)
    assert seen.is_set()
    states = BatchStore(hist.path).states("cut")
    assert [s.state for s in states.values()] == ["uncertain", "pending", "pending", "pending"]
    assert sent_prompts(sim) == CATALOGUE[:1]

    capsys.readouterr()
    b = batch(CATALOGUE, name="cut", client=client, model=MODEL)  # with its progress bar
    assert sorted(sent_prompts(sim, 1)) == sorted(CATALOGUE[1:])  # not the one maybe billed
    assert [i.request.prompt for i in b.uncertain] == CATALOGUE[:1]
    note = "1 item may have been billed without an image; retry_billed=True sends it again"
    assert f"batch cut: {note}" in capsys.readouterr().err
    assert repr(b) == f"<Batch 'cut': 3 done, 0 failed, 1 uncertain, 0 pending of 4; {note}>"

    b = batch(CATALOGUE, name="cut", client=client, progress=False, retry_billed=True, model=MODEL)
    assert sent_prompts(sim, 4) == CATALOGUE[:1]
    assert b.resent_after_interrupt == [b.items[0].key] and b.counts()["done"] == 4


def test_an_item_backing_off_after_a_429_is_pending_not_in_flight(
    sim: SimServer, hist: History
) -> None:
    client = client_for(sim, hist)
    sim.fault("429", retry_after=30)  # certainly not billed: the client waits 30 s to retry
    store = BatchStore(hist.path)

    def backing_off() -> bool:  # marked sending for the POST, then pending while it waits
        found = store.states("wait").get(first_key) if store.path.exists() else None
        return found is not None and found.state == "pending" and found.attempts == 1

    first_key = load_items(CATALOGUE[:2], {"model": MODEL})[0].key
    seen = _interrupt_when(backing_off)
    with pytest.raises(KeyboardInterrupt):
        batch(CATALOGUE[:2], name="wait", client=client, concurrency=1, progress=False, model=MODEL)
    # Seen pending during the wait, before the interrupt: what a kill -9 then would leave.
    assert seen.is_set() and sim.request_count == 1
    assert [s.state for s in store.states("wait").values()] == ["pending", "pending"]
    # A new client, as after a restart: this one's pacer still honours the 30 s Retry-After.
    b = batch(CATALOGUE[:2], name="wait", client=client_for(sim, hist), progress=False, model=MODEL)
    assert sorted(sent_prompts(sim, 1)) == sorted(CATALOGUE[:2]) and b.uncertain == []
    assert b.counts()["done"] == 2


def test_a_wait_after_a_billed_attempt_says_so() -> None:
    policy = RetryPolicy(max_retries=3, retry_billed=True, rng=random.Random(0))
    events: list[ClientEvent] = []
    steps = request_steps({"prompt": "a fox"}, Secret(FAKE_KEY), policy, None, events.append)
    failures = [
        Failure(
            APIError("overloaded", status=429), BillingRisk.RATE_LIMITED, "HTTP 429", retry_after=0
        ),
        Failure(APIError("gateway", status=504), BillingRisk.SERVER_FAILED, "HTTP 504"),
        Failure(
            APIError("overloaded", status=429), BillingRisk.RATE_LIMITED, "HTTP 429", retry_after=0
        ),
    ]
    step = next(steps)
    for failure in failures:
        assert isinstance(step, Send) and events[-1].kind == "sending"  # before the POST
        assert isinstance(steps.send(failure), Sleep)
        step = steps.send(None)
    waits = [e.may_be_billed for e in events if e.kind == "waiting"]
    assert waits == [False, True, True]  # a 429 after the 504 does not make it unbilled


# --- kill -9 midway, then resume ------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, sys
    from cometnb._client.batch_run import batch
    from cometnb._client.client import Client
    from cometnb.history import History

    base_url, folder, items = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = Client(api_key="sk-worker-0000000000000000", base_url=base_url,
                    history=History(folder))
    batch(items, name="catalogue", client=client, concurrency=4, progress=False,
          model="gpt-image-2", size="816x816")
    """
)


def _kill_midway(sim: SimServer, folder: Path, prompts: list[str], after: int) -> None:
    """Run the batch in a worker process and ``kill -9`` it once ``after`` POSTs arrived."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, sim.base_url, str(folder), json.dumps(prompts)], env=env
    )
    try:
        deadline = time.monotonic() + 60
        while sim.request_count < after and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker ended before it was killed"
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_kill_9_midway_then_the_rerun_sends_exactly_what_was_not_done(tmp_path: Path) -> None:
    prompts = [f"catalogue item {i:03d}: a product photo on white" for i in range(100)]
    folder = tmp_path / "hist"
    with SimServer(latency=0.1) as sim:
        sim.fault("latency", times=6, seconds=0)
        sim.fault("504", html=False)  # the 7th POST may have been billed
        _kill_midway(sim, folder, prompts, after=40)
        first_run = sent_prompts(sim)
        billed = first_run[6]
        history = History(folder)
        recorded_ok = {r.prompt for r in history if r.status == "ok"}
        assert 30 <= len(first_run) < 100 and billed not in recorded_ok
        # Received but with no record: their answer was on its way when the worker died.
        in_flight = set(first_run) - recorded_ok - {billed}

        client = client_for(sim, history)
        b = batch(prompts, name="catalogue", client=client, progress=False, model=MODEL, size=SIZE)
        rerun = sent_prompts(sim, len(first_run))
        uncertain = {i.request.prompt for i in b.uncertain}
        # Every request the simulator received and that has no image is uncertain, the 504 one
        # too; beyond those, only a POST the kill cut short (or caught leaving) may be: no more
        # than the worker's concurrency of 4 were on the wire at once.
        assert in_flight | {billed} <= uncertain
        assert (uncertain - in_flight - {billed}).isdisjoint(first_run)
        assert len(uncertain - set(first_run)) <= 4
        assert sorted(rerun) == sorted(set(prompts) - set(first_run) - uncertain)  # never sent
        assert Counter(rerun).most_common(1)[0][1] == 1 and not set(rerun) & set(first_run)
        assert b.counts() == {
            "done": 100 - len(uncertain),
            "failed": 0,
            "uncertain": len(uncertain),
            "pending": 0,
        }
        assert b.resent_after_interrupt == []
        shown = [r.prompt if r else None for r in b.results]
        assert shown == [None if p in uncertain - {billed} else p for p in prompts]
        assert f"{len(uncertain)} items may have been billed" in repr(b)

        mark = sim.request_count
        b = batch(
            prompts,
            name="catalogue",
            client=client,
            progress=False,
            retry_billed=True,
            model=MODEL,
            size=SIZE,
        )
        third = sent_prompts(sim, mark)

    assert sorted(third) == sorted(uncertain)  # the uncertain ones, each once, and only them
    assert {i.request.prompt for i in b.items if i.key in b.resent_after_interrupt} == (
        uncertain - {billed}
    )
    assert b.counts() == {"done": 100, "failed": 0, "uncertain": 0, "pending": 0}
    assert [r.prompt if r else None for r in b.results] == prompts  # all 100, in input order
    assert repr(b) == "<Batch 'catalogue': 100 done, 0 failed, 0 uncertain, 0 pending of 100>"


def test_a_record_found_for_an_item_left_in_flight_decides_it(
    sim: SimServer, hist: History
) -> None:
    client = client_for(sim, hist)
    sim.fault("504", html=False)  # may be billed
    sim.fault("moderation")  # refused: certainly not billed
    sim.fault("latency", seconds=0)  # (the third one succeeds)
    sim.fault("moderation")
    b = batch(CATALOGUE, name="rec", client=client, progress=False, concurrency=1, model=MODEL)
    assert [b.state(i) for i in b.items] == ["uncertain", "failed", "done", "failed"]
    # What a kill leaves between a record's commit and the item's mark (the first three: no
    # record named yet), and in the middle of a re-send (the last: the record it names is the
    # earlier run's, so its fate is unknown).
    store = BatchStore(hist.path)
    keys = [item.key for item in b.items]
    store.forget("rec", keys[:3])
    store.begin("rec", keys)
    for key in keys:
        store.mark("rec", key, "sending")
    mark = sim.request_count
    b = batch(CATALOGUE, name="rec", client=client, progress=False, model=MODEL)
    assert sent_prompts(sim, mark) == [CATALOGUE[1]]  # only the refusal: $0, not billed
    assert [b.state(i) for i in b.items] == ["uncertain", "done", "done", "uncertain"]
    errors = list(b.to_dataframe()["error"])
    assert "504" in errors[0] and errors[3].startswith("in flight when an earlier run stopped")


def test_store_survives_reopen_and_forget(tmp_path: Path) -> None:
    store = BatchStore(tmp_path)
    states, interrupted = store.begin("b", ["k1", "k2"])
    assert [s.state for s in states.values()] == ["pending", "pending"] and interrupted == []
    store.mark("b", "k1", "sending")
    store.close()
    reopened = BatchStore(tmp_path)
    states, interrupted = reopened.begin("b", ["k1", "k2"])
    assert [s.key for s in interrupted] == ["k1"] and states["k1"].attempts == 1
    assert reopened.names() == ["b"]
    assert reopened.forget("b") == 2 and reopened.states("b") == {}
