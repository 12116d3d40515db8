"""One engine: the blocking Client runs the AsyncClient's code path on the session's loop thread.

Against the simulator (real sockets) and mock transports: callbacks reach the caller's thread
in order, one connection pool per client whatever the entry point, the async entry points
await the same engine from the caller's loop, a cancel records the request, a pool is closed
whether the client is closed, dropped or outlived by its loop, and a given key is not looked
up again.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import FAKE_KEY

from cometnb._client.client import Client, _BaseClient
from cometnb._client.loop import loop_thread
from cometnb._core import settings as _settings
from cometnb._core.generations import ClientEvent

if TYPE_CHECKING:
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)

MODEL = "gpt-image-1-mini"


def _streamed(client: Client, seen: list[tuple[str, Any]]) -> Any:
    """One streamed generation recording every callback with the thread it ran on."""
    me = threading.current_thread()

    def on_partial(index: int, data: bytes) -> None:
        seen.append(("partial", (index, threading.current_thread() is me)))

    def on_event(event: ClientEvent) -> None:
        seen.append((event.kind, threading.current_thread() is me))

    return client.generate(
        "a streamed heron at dusk",
        model=MODEL,
        size="1024x1024",
        partial_images=3,
        on_partial=on_partial,
        on_event=on_event,
    )


def test_callbacks_reach_the_caller_thread_in_order(client: Client, sim: SimServer) -> None:
    seen: list[tuple[str, Any]] = []
    gen = _streamed(client, seen)
    assert gen.ok and sim.requests[-1]["stream"] is True
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "sending" and kinds[-1] == "storing"
    assert kinds.index("received") > max(i for i, k in enumerate(kinds) if k == "partial")
    partials = [value[0] for kind, value in seen if kind == "partial" and isinstance(value, tuple)]
    assert partials == sorted(partials) and len(partials) >= 2
    on_caller = [v[1] if isinstance(v, tuple) else v for _, v in seen]
    assert all(on_caller), "a callback ran on another thread than the caller's"


def test_callbacks_reach_a_worker_thread_that_calls(client: Client, sim: SimServer) -> None:
    results: dict[str, Any] = {}

    def work() -> None:
        seen: list[tuple[str, Any]] = []
        results["gen"] = _streamed(client, seen)
        results["seen"] = seen

    worker = threading.Thread(target=work, name="a-worker")
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and results["gen"].ok
    assert all(v[1] if isinstance(v, tuple) else v for _, v in results["seen"])


def test_threads_share_one_client(sim: SimServer, hist: History) -> None:
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as client:
        gens: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda i=i: gens.append(client.generate(f"owl {i}", model=MODEL))
            )
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(gens) == 6 and all(g.ok for g in gens)
    assert sorted(r.prompt for r in hist) == sorted(f"owl {i}" for i in range(6))


def test_one_connection_pool_per_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sim: SimServer
) -> None:
    """generate, generate_many, agenerate, aedit and a batch all use the client's engine: one
    httpx pool, made once (it was one more per generate_many/agenerate/aedit call)."""
    from cometnb import batch
    from cometnb.history import History

    made: list[httpx.AsyncClient] = []
    real_init = httpx.AsyncClient.__init__

    def counting(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", counting)
    hist = History(tmp_path / "h")
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as client:
        first = client.generate("a red kite", model=MODEL)
        many = client.generate_many(
            [{"prompt": f"kite {i}", "model": MODEL} for i in range(5)], concurrency=3
        )

        async def from_a_loop() -> list[Any]:
            one = await client.agenerate("a blue kite", model=MODEL)
            two = await client.aedit("the kite at night", f"@{first.record_id}", model=MODEL)
            return [one, two]

        awaited = asyncio.run(from_a_loop())
        done = batch(["a green kite", "a grey kite"], name="kites", client=client, model=MODEL)
    assert first.ok and all(g.ok for g in [*many, *awaited]) and len(done.done) == 2
    assert len(made) == 1, f"{len(made)} pools for one client"
    assert made[0].is_closed  # close() closed it, on its loop
    assert sim.request_count == 10


def test_agenerate_relays_callbacks_to_the_callers_loop(client: Client, sim: SimServer) -> None:
    where: list[tuple[str, bool, bool]] = []

    async def cell() -> Any:
        mine = asyncio.get_running_loop()

        def on_event(event: ClientEvent) -> None:
            on_loop = asyncio.get_running_loop() is mine
            where.append((event.kind, on_loop, threading.current_thread().name == "MainThread"))

        return await client.agenerate("a heron", model=MODEL, on_event=on_event)

    gen = asyncio.run(cell())
    assert gen.ok and where[0][0] == "sending"
    assert all(on_loop and main for _, on_loop, main in where)
    assert where[-1][0] == "storing"


def test_cancelling_agenerate_records_the_request_as_cancelled(
    sim: SimServer, hist: History
) -> None:
    sim.latency = 20.0

    async def cell() -> None:
        with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as client:
            task = asyncio.create_task(client.agenerate("slow", model=MODEL))
            deadline = time.monotonic() + 10
            while sim.request_count < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(cell())
    (record,) = list(hist)
    assert record.status == "cancelled"
    assert record.error is not None and "may be billed" in str(record.error)


def test_a_client_dropped_unclosed_has_its_pool_closed(sim: SimServer, hist: History) -> None:
    client = Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist)
    assert client.generate("a moth", model=MODEL).ok
    pool = client._engine._http._client
    del client
    gc.collect()
    assert pool.is_closed


def test_stopping_the_loop_closes_live_clients_pools_and_they_work_after(
    client: Client, sim: SimServer
) -> None:
    assert client.generate("a wren", model=MODEL).ok
    before = client._engine._http._client
    loop_thread().stop()  # what closing the session does
    assert before.is_closed
    assert client.generate("a wren again", model=MODEL).ok  # a new loop, a new pool
    assert client._engine._http._client is not before


def test_a_blocking_client_shares_every_setting_its_engine_resolved(sim: SimServer) -> None:
    """Client copies what _BaseClient.__init__ resolved on its engine by name
    (_BaseClient._SETTINGS): the list must name every attribute that __init__ sets, or a
    setting added there would be missing on the blocking client."""
    base = _BaseClient(FAKE_KEY, sim.base_url, 42.0, 3, history=False, retry_billed=True, rng=None)
    assert set(vars(base)) == set(_BaseClient._SETTINGS)
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, timeout=42.0, history=False) as client:
        for name in _BaseClient._SETTINGS:
            assert getattr(client, name) is getattr(client._engine, name), name
        assert client.timeout == 42.0 and client.endpoint.startswith(sim.base_url)


def test_a_transport_that_only_blocks_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="AsyncBaseTransport"):
        Client(api_key=FAKE_KEY, transport=httpx.HTTPTransport())


@pytest.fixture
def key_lookups(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ``resolve_key`` call from here on."""
    calls: list[object] = []
    real = _settings.resolve_key

    def counting(explicit: Any = None) -> Any:
        calls.append(explicit)
        return real(explicit)

    monkeypatch.setattr(_settings, "resolve_key", counting)
    return calls


def test_a_given_key_is_not_looked_up_again(key_lookups: list[object], client: Client) -> None:
    """Only the configured key is looked up, once per request, for validation (a prompt that
    quotes it must not be sent); a ``%%cometimg`` cell validates itself: no look-up here."""
    calls = key_lookups
    assert client.generate("a finch", model=MODEL).ok
    assert client.generate_many([{"prompt": "a finch again", "model": MODEL}])[0].ok
    assert calls == [None, None]
    request = client.build_request("a finch, checked", model=MODEL).validate()
    calls.clear()
    assert loop_thread().run(client._engine.send_checked(request)).ok
    assert calls == []


def test_a_configured_key_is_looked_up_when_it_is_needed(
    key_lookups: list[object], monkeypatch: pytest.MonkeyPatch, sim: SimServer, hist: History
) -> None:
    """Entered after the client was made (``%cometimg_key``), it is still used."""
    calls = key_lookups
    monkeypatch.delenv("COMETAPI_KEY", raising=False)
    with Client(base_url=sim.base_url, history=hist) as client:
        monkeypatch.setenv("COMETAPI_KEY", FAKE_KEY)
        assert client.generate("a lark", model=MODEL).ok
    # Once for the request's checks, once when it is sent (the one look-up of its sources).
    assert len(calls) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_client_used_after_fork_gets_a_loop_and_a_pool_of_its_own(
    client: Client, sim: SimServer
) -> None:
    """A forked child inherits the client but neither the loop thread nor a usable pool."""
    assert client.generate("before the fork", model=MODEL).ok
    parent_pool = client._engine._http._client
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only, never return into pytest
        code = 1
        try:
            gen = client.generate("in the child", model=MODEL)
            code = 0 if gen.ok and client._engine._http._client is not parent_pool else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0
    assert client.generate("after the fork, in the parent", model=MODEL).ok
    assert client._engine._http._client is parent_pool  # the parent's pool is untouched
