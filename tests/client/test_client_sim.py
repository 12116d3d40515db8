"""The client against the real simulator over loopback HTTP (sockets, real waits, real history).

The full fault table (every fault → retry or one short error) is ``test_faults.py``; this file
covers what is specific to the client: every model end to end, real-time retry waits, the read
timeout, streaming, URL results, concurrency, cancellation and key hygiene.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import FAKE_KEY, assert_no_key_in_tree

from cometnb._client.client import AsyncClient, Client
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CometError,
    RateLimitError,
    ResponseError,
)
from cometnb._core.generations import ClientEvent, ImageRequest
from cometnb._core.model_registry import KNOWN_MODELS

if TYPE_CHECKING:
    from cometnb.history import History
    from cometnb.sim import SimServer

pytestmark = pytest.mark.timeout(60)


def _fields(model: str) -> dict[str, object]:
    if model.startswith("dall-e"):
        return {"size": "256x256" if model == "dall-e-2" else "1024x1024"}
    return {"size": "1024x1024", "quality": "low"} if model.startswith("gpt") else {}


@pytest.mark.parametrize("model", KNOWN_MODELS)
def test_every_model_end_to_end(model: str, client: Client, sim: SimServer, hist: History) -> None:
    gen = client.generate(f"a small test picture for {model}", model=model, **_fields(model))
    assert gen.ok and gen.synthetic and gen.record_id
    image = gen.image
    assert image.path is not None and image.path.exists()
    assert image.data[:4] in (b"\x89PNG", b"RIFF") or image.data[:2] == b"\xff\xd8"
    assert (image.width, image.height) == image.pil().size
    assert sim.request_count == 1
    record = hist.get(gen.record_id)
    assert record is not None and record.status == "ok" and record.model == model


def test_dalle_url_result_is_downloaded_at_once(client: Client, sim: SimServer) -> None:
    gen = client.generate("a paper boat", model="dall-e-3", response_format="url")
    assert gen.image.path is not None and gen.image.path.exists()
    assert sim.downloads == 1


def test_expired_url_is_a_short_response_error(sim: SimServer, hist: History) -> None:
    sim.url_ttl = 0.0
    with (
        Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c,
        pytest.raises(ResponseError, match="download"),
    ):
        c.generate("a paper boat", model="dall-e-2", response_format="url")
    assert sim.request_count == 1 and hist[-1].status == "error"


def test_429_with_retry_after_1_is_retried_once_after_at_least_1_s(
    client: Client, sim: SimServer
) -> None:
    sim.fault("429", retry_after=1)
    events: list[ClientEvent] = []
    start = time.monotonic()
    gen = client.generate("a fox", model="gpt-image-1-mini", on_event=events.append)
    assert time.monotonic() - start >= 1.0
    assert gen.ok and sim.request_count == 2
    waits = [e for e in events if e.kind == "waiting"]
    assert len(waits) == 1 and waits[0].wait_s == 1.0 and waits[0].reason == "HTTP 429"


def test_429_with_an_http_date_is_honoured(client: Client, sim: SimServer) -> None:
    sim.fault("429", retry_after=1, retry_after_date=True)
    events: list[ClientEvent] = []
    assert client.generate("a fox", model="gpt-image-1-mini", on_event=events.append).ok
    waits = [e.wait_s for e in events if e.kind == "waiting"]
    assert sim.request_count == 2 and len(waits) == 1 and waits[0] is not None
    assert waits[0] <= 2.0  # an HTTP date has 1 s resolution


def test_read_timeout_is_not_retried(sim: SimServer, hist: History) -> None:
    sim.fault("hang", seconds=3)
    with (
        Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, timeout=0.5) as c,
        pytest.raises(APIError, match="billed") as info,
    ):
        c.generate("a slow one", model="gpt-image-1-mini")
    assert info.value.status is None and "timeout" in str(info.value)
    assert sim.request_count == 1
    assert hist[-1].status == "error"


def test_500_invalid_request_is_not_retried(sim: SimServer, hist: History) -> None:
    sim.fault("500_invalid")
    with (
        Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist, retry_billed=True) as c,
        pytest.raises(APIError),
    ):
        c.generate("p", model="gpt-image-1-mini")
    assert sim.request_count == 1


def test_connection_refused_names_the_host(hist: History) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{port}/v1"
    with (
        Client(api_key=FAKE_KEY, base_url=url, history=hist, sleep=sleeps.append) as c,
        pytest.raises(APIError, match=r"127\.0\.0\.1") as info,
    ):
        c.generate("p", model="gpt-image-1-mini")
    assert info.value.status is None and len(sleeps) == 2


def test_wrong_key_is_an_authentication_error_and_not_retried(hist: History) -> None:
    from cometnb.sim import SimServer

    with (
        SimServer(api_key="sk-the-right-key-000000") as server,
        Client(api_key=FAKE_KEY, base_url=server.base_url, history=hist) as c,
    ):
        with pytest.raises(AuthenticationError) as info:
            c.generate("p", model="gpt-image-1-mini")
        assert server.request_count == 1
    assert FAKE_KEY not in str(info.value) and FAKE_KEY not in repr(info.value)


# ----------------------------------------------------------------------------- streaming


def test_streaming_reports_partials_then_the_final_image(client: Client, sim: SimServer) -> None:
    partials: list[tuple[int, bytes]] = []
    gen = client.generate(
        "a streamed cat", model="gpt-image-1-mini", size="1024x1024", partial_images=2,
        on_partial=lambda i, d: partials.append((i, d)),
    )  # fmt: skip
    assert gen.ok and gen.image.path is not None
    assert [i for i, _ in partials] == sorted(i for i, _ in partials) and partials
    assert all(d[:4] in (b"\x89PNG", b"RIFF") or d[:2] == b"\xff\xd8" for _, d in partials)
    assert sim.requests[-1]["stream"] is True


@pytest.mark.parametrize("options", [{"sse_done": True}, {"stream_passthrough": False}])
def test_streaming_variants(options: dict[str, bool], hist: History) -> None:
    from cometnb.sim import SimServer

    with (
        SimServer(**options) as server,
        Client(api_key=FAKE_KEY, base_url=server.base_url, history=hist) as c,
    ):
        gen = c.generate("p", model="gpt-image-1-mini", partial_images=1)
        assert gen.ok and server.request_count == 1


@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("cut_stream", {}, ResponseError),
        ("cut_stream", {"abrupt": True}, CometError),
        ("stream_error", {}, APIError),
    ],
)
def test_stream_faults_are_one_clear_error(
    kind: str, params: dict[str, bool], error: type[CometError], client: Client, sim: SimServer
) -> None:
    sim.fault(kind, **params)
    with pytest.raises(error):
        client.generate("p", model="gpt-image-1-mini", partial_images=1)
    assert sim.request_count == 1


# ----------------------------------------------------------------------------- many + async


def test_generate_many_order_and_failures(client: Client, sim: SimServer, hist: History) -> None:
    sim.fault("moderation")  # the first POST the simulator sees is refused
    requests = [ImageRequest(f"picture {i}", "gpt-image-1-mini") for i in range(5)]
    results = client.generate_many(requests, concurrency=1)
    assert [g.prompt for g in results] == [f"picture {i}" for i in range(5)]
    assert [g.status for g in results] == ["error", "ok", "ok", "ok", "ok"]
    assert isinstance(results[0].error, APIError) and results[0].record_id
    assert sim.request_count == 5
    assert sorted(r.status for r in hist) == ["error", "ok", "ok", "ok", "ok"]


def test_generate_many_runs_concurrently(sim: SimServer, hist: History) -> None:
    sim.latency = 0.4
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        results = c.generate_many([{"prompt": f"p{i}"} for i in range(4)], concurrency=4)
    assert all(g.ok for g in results)
    spans = sorted(sim.spans)
    assert len(spans) == 4 and spans[-1][0] < spans[0][1]  # all four overlapped


@pytest.mark.parametrize("as_str", [True, False], ids=["str", "Path"])
def test_history_may_be_a_folder_path(sim: SimServer, tmp_path: Path, as_str: bool) -> None:
    from cometnb.history import History

    folder = tmp_path / "my-history"
    where = str(folder) if as_str else folder
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=where) as c:
        gen = c.generate("a lighthouse at dusk", model="gpt-image-1-mini")
    assert gen.image.path is not None and gen.image.path.is_relative_to(folder)
    records = History(folder).records()
    assert [r.prompt for r in records] == ["a lighthouse at dusk"]

    async def main() -> str | None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=where) as ac:
            return (await ac.generate("a red fox", model="gpt-image-1-mini")).record_id

    assert History(folder).get(asyncio.run(main()) or "") is not None


@pytest.mark.parametrize("wrong", [True, 3, ["a", "b"]])
def test_history_of_another_kind_is_a_clear_type_error(wrong: object) -> None:
    with pytest.raises(TypeError, match=r"folder path, a cometnb.History, False .* or None"):
        Client(api_key=FAKE_KEY, history=wrong)  # type: ignore[arg-type]


def test_async_client_against_the_simulator(sim: SimServer, hist: History) -> None:
    async def main() -> list[bool]:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            one = await c.generate("async one", model="gpt-image-1-mini")
            many = await c.generate_many([{"prompt": "a"}, {"prompt": "b"}])
            return [one.ok, *(g.ok for g in many)]

    assert asyncio.run(main()) == [True, True, True]
    assert sim.request_count == 3


def test_keyboard_interrupt_cancels_generate_many_and_records_it(
    sim: SimServer, hist: History
) -> None:
    sim.latency = 20.0
    started = threading.Event()

    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while sim.request_count < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        started.set()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with (
        Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c,
        pytest.raises(KeyboardInterrupt),
    ):
        c.generate_many([{"prompt": "slow a"}, {"prompt": "slow b"}])
    assert started.is_set()
    assert sorted(r.status for r in hist) == ["cancelled", "cancelled"]


def test_async_cancellation_records_cancelled(sim: SimServer, hist: History) -> None:
    sim.latency = 20.0

    async def main() -> None:
        async with AsyncClient(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
            task = asyncio.create_task(c.generate("slow", model="gpt-image-1-mini"))
            while sim.request_count < 1:
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert [r.status for r in hist] == ["cancelled"]


# ----------------------------------------------------------------------------- the key


def test_the_key_is_in_no_error_repr_or_file(sim: SimServer, hist: History, tmp_path: Path) -> None:
    texts: list[str] = []
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        texts.append(repr(c))
        c.generate("fine", model="gpt-image-1-mini")
        for kind in ("500", "html_404", "moderation", "429"):
            sim.fault(kind, **({"quota": True} if kind == "429" else {}))
            with pytest.raises(CometError) as info:
                c.generate("failing", model="gpt-image-1-mini")
            error = info.value
            texts += [str(error), repr(error), *error._render_traceback_()]
            texts.append(str(getattr(error, "body", "")))
    assert "sk-…e0" in texts[0]
    assert all(FAKE_KEY not in t for t in texts)
    assert_no_key_in_tree(hist.path)
    assert_no_key_in_tree(tmp_path)
    assert isinstance(info.value, RateLimitError)


def test_sixteen_concurrent_requests_share_one_history_safely(
    sim: SimServer, hist: History, tmp_path: Path
) -> None:
    """16 requests in flight at once (history writes in worker threads): nothing lost or mixed."""
    from cometnb.history import History

    sim.latency = 0.1
    prompts = [f"concurrent picture {i}" for i in range(16)]
    with Client(api_key=FAKE_KEY, base_url=sim.base_url, history=hist) as c:
        results = c.generate_many(
            [{"prompt": p, "model": "gpt-image-1-mini"} for p in prompts], concurrency=16
        )
    assert [g.prompt for g in results] == prompts and all(g.ok for g in results)
    assert len({g.record_id for g in results}) == 16
    paths = [g.image.path for g in results]
    assert len({p for p in paths if p is not None}) == 16
    reopened = History(hist.path)  # what a restarted kernel sees
    assert sorted(r.prompt for r in reopened) == sorted(prompts)
    for gen in results:
        record = reopened.get(str(gen.record_id))
        assert record is not None and record.prompt == gen.prompt
        assert record.images[0].path.read_bytes() == gen.image.data
    assert_no_key_in_tree(tmp_path)


def test_a_key_with_a_trailing_newline_works_against_a_real_socket(
    sim: SimServer, hist: History, tmp_path: Path
) -> None:
    """httpx refuses such a header and quotes it; the client strips the newline first."""
    with Client(api_key=FAKE_KEY + "\n", base_url=sim.base_url, history=hist) as c:
        assert c.generate("a key read from a file", model="gpt-image-1-mini").ok
    assert_no_key_in_tree(tmp_path)
