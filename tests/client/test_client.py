"""Client behaviour on every network path, driven by httpx.MockTransport (no sockets, no sleeping).

Integration tests against the simulator are in ``test_client_sim.py``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import SHARED_FIXTURES
from PIL import Image

from cometnb._client.client import AsyncClient, Client
from cometnb._client.http import shared_ssl_context
from cometnb._core import settings as _settings
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CancelledError,
    CometError,
    RateLimitError,
    ResponseError,
    ValidationError,
)
from cometnb._core.generations import (
    ApiResult,
    ClientEvent,
    GeneratedImage,
    Generation,
    ImageRequest,
)
from cometnb._version import __version__

BASE = "http://api.test/v1"
ENDPOINT = f"{BASE}/images/generations"
FIXTURES = SHARED_FIXTURES
MODEL = "gpt-image-1-mini"


def png(width: int = 8, height: int = 4, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ok_body(*images: bytes, **extra: Any) -> dict[str, Any]:
    return {"created": 1700000000, "data": [{"b64_json": b64(i)} for i in images], **extra}


def err(status: int, message: str = "nope", code: str = "", **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "comet_api_error", "param": "", "code": code}}
    return httpx.Response(status, json=body, headers=headers)


Step = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]


class Scripted:
    """A MockTransport handler answering with ``steps`` in order (the last one repeats)."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        posts = [r for r in self.requests if r.method == "POST"]
        step = (
            self.steps[min(len(posts), len(self.steps)) - 1] if request.method == "POST" else None
        )
        if request.method == "GET":
            return self.get(request)
        if isinstance(step, BaseException):
            raise step
        if callable(step) and not isinstance(step, httpx.Response):
            return step(request)
        assert isinstance(step, httpx.Response)
        return httpx.Response(step.status_code, headers=step.headers, content=step.content)

    downloads: dict[str, httpx.Response] = {}  # noqa: RUF012  (replaced per instance)

    def get(self, request: httpx.Request) -> httpx.Response:
        # Downloads go to the checked address under the host's name (fetch_guard.Target):
        # look them up by the URL as the server named it.
        named = request.url.copy_with(netloc=request.headers["host"].encode("ascii"))
        return self.downloads.get(str(named), httpx.Response(404))

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Image hosts (``files.test``…) resolve to a public address; the mock transport never
    connects, and a host that does not resolve is refused before any download."""
    from cometnb._client import http as fetch_guard

    monkeypatch.setattr(fetch_guard, "_resolve", lambda host: ["93.184.216.34"])


@dataclass
class FakeRecord:
    id: str
    images: list[GeneratedImage]


@dataclass
class FakeHistory:
    """Stands in for cometnb.history.History: records what the client stores."""

    successes: list[tuple[dict[str, Any], ApiResult, dict[str, Any]]] = field(default_factory=list)
    failures: list[tuple[dict[str, Any], CometError, dict[str, Any]]] = field(default_factory=list)

    def record_success(self, request: dict[str, Any], result: ApiResult, **kw: Any) -> FakeRecord:
        self.successes.append((request, result, kw))
        images = [
            GeneratedImage(None, i.format, i.width, i.height, data=i.data) for i in result.images
        ]
        return FakeRecord(f"ok-{len(self.successes)}", images)

    def check_writable(self) -> None:
        pass

    def record_failure(self, request: dict[str, Any], error: CometError, **kw: Any) -> FakeRecord:
        self.failures.append((request, error, kw))
        return FakeRecord(f"err-{len(self.failures)}", [])


def make(
    *steps: Step,
    history: Any = False,
    sleeps: list[float] | None = None,
    **kw: Any,
) -> tuple[Client, Scripted]:
    script = Scripted(*steps)
    script.downloads = {}
    client = Client(
        api_key=kw.pop("api_key", "sk-cometnb-test-7f3a9c2e51d04b86a1e0"),
        base_url=BASE,
        history=history,
        transport=httpx.MockTransport(script),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **kw,
    )
    return client, script


OK = httpx.Response(200, json=ok_body(png()))


# ----------------------------------------------------------------------------- requests


def test_happy_path_sends_auth_user_agent_and_json(fake_key: str) -> None:
    client, script = make(OK, api_key=fake_key)
    gen = client.generate("a red square", model=MODEL, size="1024x1024", quality="low")
    request = script.posts[0]
    assert str(request.url) == ENDPOINT
    assert request.headers["authorization"] == f"Bearer {fake_key}"
    assert request.headers["user-agent"] == f"cometnb/{__version__}"
    assert json.loads(request.content) == {
        "model": MODEL,
        "prompt": "a red square",
        "size": "1024x1024",
        "quality": "low",
    }
    assert gen.ok and gen.request["prompt"] == "a red square"
    image = gen.image
    assert (image.format, image.width, image.height, image.path) == ("png", 8, 4, None)
    assert image.data == png()
    assert gen.created == 1700000000 and not gen.synthetic


def test_usage_meta_and_simulator_header_are_kept() -> None:
    body = ok_body(png(), usage={"total_tokens": 5}, size="8x4", quality="low", extra="x")
    response = httpx.Response(200, json=body, headers={"X-CometNB-Simulator": "1"})
    client, _ = make(response)
    gen = client.generate("p", model=MODEL)
    assert gen.usage == {"total_tokens": 5}
    assert gen.meta == {"size": "8x4", "quality": "low"}
    assert gen.synthetic


def test_timeouts_come_from_settings_and_arguments() -> None:
    client, _ = make(OK)
    assert (client.timeout, client.connect_timeout, client.max_retries) == (600.0, 10.0, 2)
    custom, _ = make(OK, timeout=30, max_retries=0)
    assert (custom.timeout, custom.max_retries) == (30.0, 0)


def test_request_defaults_come_from_settings() -> None:
    settings = _settings.active()
    settings.model, settings.size, settings.quality = MODEL, "1536x1024", "low"
    client, script = make(OK)
    client.generate("p")
    assert json.loads(script.posts[0].content) == {
        "model": MODEL,
        "prompt": "p",
        "size": "1536x1024",
        "quality": "low",
    }


def test_a_settings_default_the_model_rejects_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    _settings.active().size = "1536x1024"  # a gpt-image size; dall-e-2 cannot take it
    client, _ = make(OK)
    with caplog.at_level("INFO", logger="cometnb"):
        assert "size" not in client.build_request("p", model="dall-e-2").fields
    assert "CometImg.size='1536x1024' does not apply to dall-e-2" in caplog.text
    assert client.build_request("p", model="dall-e-2", size="512x512").fields["size"] == "512x512"


def test_a_value_typed_in_the_call_is_never_dropped() -> None:
    """Only configured defaults are skipped; the user's own bad value is refused, unsent."""
    _settings.active().size = "512x512"
    client, script = make(OK)
    for fields in ({"size": "1536x1024"}, {"quality": "hd"}):
        with pytest.raises(ValidationError) as info:
            client.generate("p", model="dall-e-2", **fields)
        assert info.value.field == next(iter(fields))
    with pytest.raises(ValidationError, match="size"):
        client.generate_many([{"prompt": "p", "model": "dall-e-2", "size": "1536x1024"}])
    assert script.requests == []


def test_partial_images_turns_streaming_on() -> None:
    client, _ = make(OK)
    request = client.build_request("p", model=MODEL, partial_images=2)
    assert request.fields["stream"] is True and request.fields["partial_images"] == 2


def test_validation_happens_before_any_request() -> None:
    client, script = make(OK)
    with pytest.raises(ValidationError):
        client.generate("p", model="dall-e-3", n=2)
    assert script.requests == []


def test_no_key_fails_before_the_network_with_a_hint() -> None:
    script = Scripted(OK)
    client = Client(base_url=BASE, history=False, transport=httpx.MockTransport(script))
    with pytest.raises(AuthenticationError) as info:
        client.generate("p", model=MODEL)
    assert "COMETAPI_KEY" in str(info.value) and "%cometimg_key" in str(info.value)
    assert script.requests == []


def test_key_resolution_uses_the_session_key_at_call_time() -> None:
    script = Scripted(OK)
    client = Client(base_url=BASE, history=False, transport=httpx.MockTransport(script))
    _settings.set_session_key("sk-session-key-abcdef123456")
    client.generate("p", model=MODEL)
    assert script.posts[0].headers["authorization"] == "Bearer sk-session-key-abcdef123456"


def test_repr_masks_the_key(fake_key: str) -> None:
    client, _ = make(OK, api_key=fake_key)
    assert repr(client) == f"Client(base_url='{BASE}', api_key='sk-…e0')"
    assert fake_key not in repr(client)


def test_clients_share_one_verifying_tls_context() -> None:
    # Loading the CA bundle costs ~25 ms, and the magic makes a client per cell.
    ctx = shared_ssl_context()
    assert ctx is shared_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    with Client(api_key="k") as sync_client:
        assert sync_client._engine._http._client._transport._pool._ssl_context is ctx
    async_client = AsyncClient(api_key="k")
    assert async_client._http._client._transport._pool._ssl_context is ctx


def test_bad_base_url_is_refused() -> None:
    with pytest.raises(ValidationError, match="base_url"):
        Client(api_key="k", base_url="api.cometapi.com/v1")


# ----------------------------------------------------------------------------- retries


def test_429_is_retried_after_retry_after_and_reported() -> None:
    sleeps: list[float] = []
    events: list[ClientEvent] = []
    client, script = make(err(429, **{"Retry-After": "1"}), OK, sleeps=sleeps)
    gen = client.generate("p", model=MODEL, on_event=events.append)
    assert gen.ok and len(script.posts) == 2 and sleeps == [1.0]
    waiting = [e for e in events if e.kind == "waiting"]
    assert waiting == [ClientEvent("waiting", attempt=2, wait_s=1.0, reason="HTTP 429")]
    assert [e.attempt for e in events if e.kind == "sending"] == [1, 2]
    # "received" (the slot may go to the next request) only for the answer that worked,
    # after its last attempt and before it is stored.
    kinds = [e.kind for e in events]
    assert kinds.count("received") == 1
    assert kinds.index("received") > kinds.index("waiting")
    assert kinds.index("received") < kinds.index("storing")


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "0"}, 0.0)],
)
def test_retry_after_forms(headers: dict[str, str], wait: float) -> None:
    sleeps: list[float] = []
    client, _ = make(err(429, **headers), OK, sleeps=sleeps)
    client.generate("p", model=MODEL)
    assert sleeps == [wait]


def test_503_is_retried_with_jittered_exponential_backoff() -> None:
    sleeps: list[float] = []
    client, script = make(err(503), err(503), OK, sleeps=sleeps)
    assert client.generate("p", model=MODEL).ok
    assert len(script.posts) == 3
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


def test_429_exhausted_raises_rate_limit_error() -> None:
    client, script = make(err(429, "slow down"))
    with pytest.raises(RateLimitError, match="slow down") as info:
        client.generate("p", model=MODEL)
    assert len(script.posts) == 3  # 1 + max_retries
    assert "lower the concurrency" in str(info.value)


def test_429_quota_exhausted_fails_at_once() -> None:
    client, script = make(err(429, "You exceeded your current quota", "insufficient_quota"))
    with pytest.raises(RateLimitError, match="top up"):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1


def test_long_retry_after_gives_up_saying_when() -> None:
    client, script = make(err(429, **{"Retry-After": "3600"}))
    with pytest.raises(RateLimitError, match="try again after"):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1


def test_x_should_retry_false_is_honoured() -> None:
    client, script = make(err(503, **{"x-should-retry": "false"}))
    with pytest.raises(APIError):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1


@pytest.mark.parametrize("status", [500, 502, 504, 524, 408, 409])
def test_may_have_been_billed_statuses_are_not_retried(status: int) -> None:
    client, script = make(err(status), OK)
    with pytest.raises(APIError, match="retry_billed=True") as info:
        client.generate("p", model=MODEL)
    assert info.value.status == status
    assert len(script.posts) == 1


@pytest.mark.parametrize("status", [500, 502, 504, 524])
def test_retry_billed_allows_exactly_one_retry(status: int) -> None:
    client, script = make(err(status), OK, retry_billed=True)
    assert client.generate("p", model=MODEL).ok
    assert len(script.posts) == 2
    client, script = make(err(status), retry_billed=True, max_retries=5)
    with pytest.raises(APIError, match="already retried once"):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, APIError), (401, AuthenticationError), (403, AuthenticationError), (404, APIError),
     (413, APIError)],
)  # fmt: skip
def test_client_errors_are_never_retried(status: int, kind: type[CometError]) -> None:
    client, script = make(err(status), OK, retry_billed=True)
    with pytest.raises(kind):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1


def test_500_invalid_request_is_not_retried_even_when_opted_in() -> None:
    client, script = make(err(500, "bad size", "invalid_request"), OK, retry_billed=True)
    with pytest.raises(APIError, match="bad request"):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1


def test_moderation_refusal_is_not_retried() -> None:
    refusal = httpx.Response(400, content=(FIXTURES / "error-moderation.json").read_bytes())
    client, script = make(refusal, OK, retry_billed=True)
    events: list[ClientEvent] = []
    with pytest.raises(APIError, match="content policy") as info:
        client.generate("p", model=MODEL, on_event=events.append)
    assert info.value.code == "moderation_blocked" and len(script.posts) == 1
    assert [e.kind for e in events] == ["sending"]  # an error answer is never "received"


def test_connect_errors_are_retried_then_name_the_host() -> None:
    sleeps: list[float] = []
    client, script = make(httpx.ConnectError("[Errno 111] Connection refused"), sleeps=sleeps)
    with pytest.raises(APIError, match=r"api\.test") as info:
        client.generate("p", model=MODEL)
    assert info.value.status is None and len(script.posts) == 3 and len(sleeps) == 2
    assert "connection refused" in str(info.value)


def test_connect_error_then_success() -> None:
    client, script = make(httpx.ConnectTimeout("slow"), OK)
    assert client.generate("p", model=MODEL).ok and len(script.posts) == 2


def test_read_timeout_is_not_retried_and_says_billed() -> None:
    client, script = make(httpx.ReadTimeout("timed out"), OK)
    with pytest.raises(APIError, match="billed") as info:
        client.generate("p", model=MODEL)
    assert info.value.status is None and len(script.posts) == 1


@pytest.mark.parametrize("exc", [httpx.RemoteProtocolError("gone"), httpx.ReadError("reset")])
def test_dropped_connection_is_not_retried(exc: Exception) -> None:
    client, script = make(exc, OK)
    with pytest.raises(APIError, match="dropped"):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1


def test_redirect_is_not_followed() -> None:
    moved = httpx.Response(301, headers={"Location": "https://elsewhere.test/v1/x"})
    client, script = make(moved, OK)
    with pytest.raises(APIError, match="base_url"):
        client.generate("p", model=MODEL)
    assert len(script.requests) == 1


def test_html_error_page_is_short_and_hints_at_base_url() -> None:
    page = httpx.Response(404, text="<html><title>Not Found</title><body>" + "z" * 9000)
    client, _ = make(page)
    with pytest.raises(APIError, match=r"[Cc]heck base_url") as info:
        client.generate("p", model=MODEL)
    assert len(str(info.value)) < 400 and "Not Found" in str(info.value)


def test_the_key_never_appears_in_errors(fake_key: str) -> None:
    echo = err(401, f"Invalid token {fake_key} (request id: abc)")
    client, _ = make(echo, api_key=fake_key)
    with pytest.raises(AuthenticationError) as info:
        client.generate("p", model=MODEL)
    error = info.value
    assert error.request_id == "abc"
    for text in (str(error), repr(error), json.dumps(error.body), *error._render_traceback_()):
        assert fake_key not in text


# ----------------------------------------------------------------------------- results


def test_url_results_are_downloaded_without_the_auth_header() -> None:
    url = "https://files.test/cdn/abc.png"
    body = {"created": 1, "data": [{"url": url, "revised_prompt": "a nicer prompt"}]}
    client, script = make(httpx.Response(200, json=body))
    script.downloads = {url: httpx.Response(200, content=png(16, 16))}
    events: list[ClientEvent] = []
    gen = client.generate("p", model="dall-e-3", on_event=events.append)
    get = next(r for r in script.requests if r.method == "GET")
    assert get.headers["host"] == "files.test" and "authorization" not in get.headers
    assert str(get.url) == "https://93.184.216.34/cdn/abc.png"  # the address that was checked
    assert get.extensions["sni_hostname"] == "files.test"
    assert gen.image.revised_prompt == "a nicer prompt" and gen.image.width == 16
    assert any(e.kind == "downloading" for e in events)


def test_dalle_fixture_url_is_downloaded() -> None:
    body = (FIXTURES / "dall-e-3-url.json").read_bytes()
    client, script = make(httpx.Response(200, content=body))
    url = json.loads(body)["data"][0]["url"]
    script.downloads = {url: httpx.Response(200, content=png())}
    assert client.generate("p", model="dall-e-3").image.revised_prompt


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_url_is_a_response_error(status: int) -> None:
    url = "https://files.test/cdn/gone.png"
    client, script = make(httpx.Response(200, json={"created": 1, "data": [{"url": url}]}))
    script.downloads = {url: httpx.Response(status)}
    with pytest.raises(ResponseError, match=f"HTTP {status}"):
        client.generate("p", model="dall-e-3")


def test_non_http_url_is_refused() -> None:
    body = {"created": 1, "data": [{"url": "file:///etc/passwd"}]}
    client, _ = make(httpx.Response(200, json=body))
    with pytest.raises(ResponseError, match="not http"):
        client.generate("p", model="dall-e-3")


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (httpx.Response(200, content=b'{"created": 1, "data": [{"b64'), "malformed JSON"),
        (httpx.Response(200, json={"created": 1}), "without any images"),
        (httpx.Response(200, json={"created": 1, "data": []}), "without any images"),
        (httpx.Response(200, json={"data": [{"revised_prompt": "x"}]}), "neither"),
        (httpx.Response(200, json={"data": [{"b64_json": "!!!not base64"}]}), "base64"),
        (httpx.Response(200, json={"data": [{"b64_json": b64(b"plain text")}]}), "not an image"),
    ],
)
def test_unusable_answers_are_response_errors(response: httpx.Response, words: str) -> None:
    client, script = make(response)
    with pytest.raises(ResponseError, match=words):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1  # billed already: never retried


def test_gpt_image_fixture_parses() -> None:
    body = (FIXTURES / "gpt-image-2.json").read_bytes()
    client, _ = make(httpx.Response(200, content=body))
    gen = client.generate("p", model="gpt-image-2")
    assert gen.image.format == "jpeg" and gen.usage and gen.meta["output_format"] == "jpeg"


# ----------------------------------------------------------------------------- streaming


def sse(text: str) -> httpx.Response:
    return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def test_stream_fixture_calls_on_partial_and_returns_the_final_image() -> None:
    client, script = make(sse((FIXTURES / "stream.txt").read_text()))
    partials: list[tuple[int, bytes]] = []
    events: list[ClientEvent] = []
    gen = client.generate(
        "p", model=MODEL, partial_images=1, on_partial=lambda i, d: partials.append((i, d)),
        on_event=events.append,
    )  # fmt: skip
    body = json.loads(script.posts[0].content)
    assert body["stream"] is True and body["partial_images"] == 1
    assert "text/event-stream" in script.posts[0].headers["accept"]
    assert [i for i, _ in partials] == [0] and partials[0][1].startswith(b"\x89PNG")
    assert [e.partial_index for e in events if e.kind == "partial"] == [0]
    assert [e.kind for e in events][-2:] == ["received", "storing"]  # once the stream ended
    assert gen.image.format == "png" and gen.usage and gen.usage["total_tokens"]
    assert gen.meta["size"] == "1024x1024"


def test_stream_request_answered_with_plain_json_falls_back() -> None:
    client, _ = make(OK)
    gen = client.generate("p", model=MODEL, partial_images=2, on_partial=lambda i, d: None)
    assert gen.ok and gen.image.width == 8


def test_stream_cut_before_completed_is_a_response_error() -> None:
    text = (FIXTURES / "stream.txt").read_text().split("event: image_generation.completed")[0]
    client, script = make(sse(text), retry_billed=True)
    with pytest.raises(ResponseError, match="ended before the final image"):
        client.generate("p", model=MODEL, partial_images=1)
    assert len(script.posts) == 1


def test_stream_error_event_is_an_api_error() -> None:
    text = 'event: error\ndata: {"error": {"message": "upstream died", "code": "x"}}\n\n'
    client, _ = make(sse(text))
    with pytest.raises(APIError, match="upstream died"):
        client.generate("p", model=MODEL, partial_images=1)


def test_broken_callbacks_do_not_lose_the_image() -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("display broke")

    client, _ = make(sse((FIXTURES / "stream.txt").read_text()))
    gen = client.generate("p", model=MODEL, partial_images=1, on_partial=explode, on_event=explode)
    assert gen.ok


# ----------------------------------------------------------------------------- history


def test_success_is_stored_through_the_history() -> None:
    hist = FakeHistory()
    client, _ = make(OK, history=hist)
    gen = client.generate("p", model=MODEL, tags=["a", "b"], origin="test")
    (request, result, kw) = hist.successes[0]
    assert request == gen.request and result.images[0].data == png()
    assert kw["tags"] == ("a", "b") and kw["origin"] == "test" and kw["elapsed_s"] >= 0
    assert gen.record_id == "ok-1" and gen.image.data == png()


def test_failures_are_recorded_before_raising() -> None:
    hist = FakeHistory()
    client, _ = make(err(400, "bad prompt"), history=hist)
    with pytest.raises(APIError) as info:
        client.generate("p", model=MODEL, tags=["t"])
    (request, error, kw) = hist.failures[0]
    assert error is info.value and request["prompt"] == "p" and kw["status"] == "error"
    assert info.value.record_id == "err-1"  # the raised error names its history record


def test_missing_key_is_recorded_but_validation_errors_are_not() -> None:
    hist = FakeHistory()
    client = Client(base_url=BASE, history=hist, transport=httpx.MockTransport(Scripted(OK)))
    with pytest.raises(ValidationError):
        client.generate("p", model="dall-e-3", n=3)
    assert hist.failures == []
    with pytest.raises(AuthenticationError):
        client.generate("p", model=MODEL)
    assert isinstance(hist.failures[0][1], AuthenticationError)


def test_keyboard_interrupt_is_recorded_as_cancelled() -> None:
    hist = FakeHistory()
    client, _ = make(KeyboardInterrupt(), history=hist)
    with pytest.raises(KeyboardInterrupt):
        client.generate("p", model=MODEL)
    (_, error, kw) = hist.failures[0]
    assert isinstance(error, CancelledError) and kw["status"] == "cancelled"


def test_keyboard_interrupt_inside_a_run_of_several_reaches_the_caller() -> None:
    """Raised in one request of a ``generate_many`` (a child task of the runner), it reaches
    the caller; the session's loop thread lives on and serves the next call."""
    hist = FakeHistory()
    client, _ = make(OK, KeyboardInterrupt(), OK, OK, history=hist)
    with pytest.raises(KeyboardInterrupt):
        client.generate_many([{"prompt": p, "model": MODEL} for p in "abc"], concurrency=1)
    assert any(kw["status"] == "cancelled" for (_, _, kw) in hist.failures)
    assert client.generate("d", model=MODEL).ok


def test_history_none_uses_the_active_history(monkeypatch: pytest.MonkeyPatch) -> None:
    from cometnb._client import client as base

    hist = FakeHistory()
    monkeypatch.setattr(base, "active_history", lambda: hist)
    client, _ = make(OK, history=None)
    assert client.generate("p", model=MODEL).record_id == "ok-1"


# ----------------------------------------------------------------------------- async


def test_async_client_happy_path_and_retry() -> None:
    script = Scripted(err(429, **{"Retry-After": "0"}), OK)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def main() -> Generation:
        async with AsyncClient(
            api_key="sk-async-key-0123456789", base_url=BASE, history=False,
            transport=httpx.MockTransport(script), sleep=fake_sleep,
        ) as client:  # fmt: skip
            return await client.generate("p", model=MODEL)

    gen = asyncio.run(main())
    assert gen.ok and slept == [0.0] and len(script.posts) == 2


def test_async_stream_fixture() -> None:
    script = Scripted(sse((FIXTURES / "stream.txt").read_text()))
    partials: list[int] = []

    async def main() -> Generation:
        async with AsyncClient(
            api_key="sk-async-key-0123456789", base_url=BASE, history=False,
            transport=httpx.MockTransport(script),
        ) as client:  # fmt: skip
            return await client.generate(
                "p", model=MODEL, partial_images=1, on_partial=lambda i, d: partials.append(i)
            )

    assert asyncio.run(main()).image.format == "png" and partials == [0]


def test_client_agenerate_runs_on_the_callers_loop() -> None:
    client, script = make(OK)
    gen = asyncio.run(client.agenerate("p", model=MODEL))
    assert gen.ok and len(script.posts) == 1


def test_sync_generate_works_inside_a_running_loop() -> None:
    """Jupyter runs a loop on the kernel thread: the sync client must not need it."""
    client, _ = make(OK)

    async def cell() -> Generation:
        return client.generate("p", model=MODEL)

    assert asyncio.run(cell()).ok


def test_cancelling_an_async_request_records_cancelled() -> None:
    hist = FakeHistory()
    started = threading.Event()

    async def main() -> None:
        async def slow(request: httpx.Request) -> httpx.Response:
            started.set()
            await asyncio.sleep(30)
            return OK

        client = AsyncClient(
            api_key="sk-async-key-0123456789", base_url=BASE, history=hist,
            transport=httpx.MockTransport(slow),
        )  # fmt: skip
        task = asyncio.create_task(client.generate("p", model=MODEL))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()

    asyncio.run(main())
    (_, error, kw) = hist.failures[0]
    assert isinstance(error, CancelledError) and kw["status"] == "cancelled"


# ----------------------------------------------------------------------------- many


def _by_prompt(delays: dict[str, float], fail: set[str]) -> Callable[..., Any]:
    async def handler(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["prompt"]
        await asyncio.sleep(delays.get(prompt, 0.0))
        if prompt in fail:
            return err(400, f"refused {prompt}")
        return httpx.Response(200, json=ok_body(png()))

    return handler


def test_generate_many_keeps_input_order_and_returns_failures() -> None:
    handler = _by_prompt({"a": 0.2, "b": 0.0, "c": 0.1}, fail={"b"})
    client, _ = make(handler)
    seen: list[int] = []
    results = client.generate_many(
        [ImageRequest("a", MODEL), {"prompt": "b", "model": MODEL}, {"prompt": "c"}],
        concurrency=3,
        on_result=lambda i, g: seen.append(i),
    )
    assert [g.prompt for g in results] == ["a", "b", "c"]
    assert [g.status for g in results] == ["ok", "error", "ok"]
    assert isinstance(results[1].error, APIError) and "refused b" in str(results[1].error)
    assert sorted(seen) == [0, 1, 2] and seen[0] == 1  # b finished first


def test_generate_many_validates_everything_before_sending() -> None:
    client, script = make(OK)
    with pytest.raises(ValidationError, match="request 2"):
        client.generate_many([{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "n": 99}])
    with pytest.raises(ValidationError, match="request 0"):
        client.generate_many([42])  # type: ignore[list-item]
    assert script.requests == []


def test_generate_many_respects_concurrency() -> None:
    active = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return httpx.Response(200, json=ok_body(png()))

    client, _ = make(handler)
    results = client.generate_many([{"prompt": str(i)} for i in range(7)], concurrency=2)
    assert all(g.ok for g in results) and peak == 2


class StoreWaitsForTheNextPost(FakeHistory):
    """Storing the first result waits (bounded) until a second POST has been sent."""

    def __init__(self, script: Scripted) -> None:
        super().__init__()
        self.script = script
        self.overlapped = False

    def record_success(self, request: dict[str, Any], result: ApiResult, **kw: Any) -> FakeRecord:
        if not self.successes:
            deadline = time.monotonic() + 5.0
            while len(self.script.posts) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.overlapped = len(self.script.posts) >= 2
        return super().record_success(request, result, **kw)


def test_generate_many_sends_the_next_request_while_a_result_is_stored() -> None:
    # One slot: the second request may go out once the first response is read, not only
    # after its images are stored (storing a 3 MB PNG and its preview takes tens of ms).
    client, script = make(OK)
    history = StoreWaitsForTheNextPost(script)
    client._engine._history_arg = history  # the engine stores; made before the history
    results = client.generate_many([{"prompt": "a"}, {"prompt": "b"}], concurrency=1)
    assert [g.ok for g in results] == [True, True]
    assert history.overlapped
    assert len(script.posts) == 2


def test_generate_many_works_inside_a_running_loop() -> None:
    client, _ = make(OK)

    async def cell() -> list[Generation]:
        return client.generate_many([{"prompt": "a"}, {"prompt": "b"}])

    assert [g.ok for g in asyncio.run(cell())] == [True, True]


def test_generate_many_records_failures_in_history() -> None:
    hist = FakeHistory()
    client, _ = make(_by_prompt({}, fail={"x"}), history=hist)
    results = client.generate_many([{"prompt": "x"}, {"prompt": "y"}], tags=["batch"])
    assert results[0].record_id == "err-1" and results[1].record_id == "ok-1"
    assert hist.failures[0][2]["tags"] == ("batch",)


def test_async_generate_many() -> None:
    script = Scripted(OK)

    async def main() -> list[Generation]:
        async with AsyncClient(
            api_key="sk-async-key-0123456789", base_url=BASE, history=False,
            transport=httpx.MockTransport(script),
        ) as client:  # fmt: skip
            return await client.generate_many([{"prompt": "a"}, {"prompt": "b"}])

    assert [g.ok for g in asyncio.run(main())] == [True, True]


def test_generate_many_keeps_its_concurrency_after_a_retry_now_429() -> None:
    """A 429 with ``Retry-After: 0`` asks for a retry, not a lower rate: later requests still
    run four at a time (the old limit halved itself for 30 s)."""
    active = peak_late = 0
    saw_429 = False

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak_late, saw_429
        index = int(json.loads(request.content)["prompt"])
        if index == 0 and not saw_429:
            saw_429 = True
            return err(429, **{"Retry-After": "0"})
        active += 1
        if index >= 4:  # started after the first wave, i.e. after the 429
            peak_late = max(peak_late, active)
        await asyncio.sleep(0.03)
        active -= 1
        return httpx.Response(200, json=ok_body(png()))

    client, _ = make(handler)
    results = client.generate_many([{"prompt": str(i)} for i in range(12)], concurrency=4)
    assert all(g.ok for g in results) and saw_429
    assert peak_late == 4 and client.pacer is not None and client.pacer.rate is None


def test_generate_many_paces_after_a_rate_limit_and_shares_what_it_learned() -> None:
    """A 429 asking to wait sets a sending rate on the client's pacer (its engine's, which
    runs generate_many), spacing the sends after it (the client waits for real here)."""
    sent: list[float] = []
    limited = False

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal limited
        sent.append(time.monotonic())
        if len(sent) == 2 and not limited:
            limited = True
            return err(429, **{"retry-after-ms": "200"})
        return httpx.Response(200, json=ok_body(png()))

    client = Client(
        api_key="sk-cometnb-test-7f3a9c2e51d04b86a1e0",
        base_url=BASE,
        history=False,
        transport=httpx.MockTransport(handler),
    )
    results = client.generate_many([{"prompt": str(i)} for i in range(5)], concurrency=4)
    assert all(g.ok for g in results) and limited
    assert client.pacer is not None and client.pacer.rate is not None
    late = sorted(sent)[-3:]
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert min(gaps) >= 0.8 / client.pacer.rate * 0.5  # spaced, not sent at once


# ----------------------------------------------------------------------------- review fixes


def test_key_read_from_a_file_has_its_line_break_stripped(fake_key: str) -> None:
    """``open("key.txt").read()`` ends in a newline: send the key, not an illegal header."""
    client, script = make(OK, api_key=f" {fake_key}\n")
    assert client.generate("p", model=MODEL).ok
    assert script.posts[0].headers["authorization"] == f"Bearer {fake_key}"


@pytest.mark.parametrize("bad", ["sk-abcd\nefgh-1234", "sk-abcd efgh-1234", "sk-abcdéfgh-1234"])
def test_a_key_no_header_can_carry_is_refused_before_sending(bad: str) -> None:
    history = FakeHistory()
    client, script = make(OK, api_key=bad, history=history)
    with pytest.raises(AuthenticationError, match="API key") as info:
        client.generate("p", model=MODEL)
    assert script.requests == []
    for text in (str(info.value), repr(info.value)):
        assert bad not in text and "efgh" not in text
    assert history.failures and "efgh" not in str(history.failures[0][1])


@pytest.mark.parametrize(
    "exc",
    [httpx.LocalProtocolError("Illegal header value"), httpx.UnsupportedProtocol("ftp")],
)
def test_errors_before_sending_are_not_called_billed(exc: Exception) -> None:
    client, script = make(exc, OK, retry_billed=True)
    with pytest.raises(APIError) as info:
        client.generate("p", model=MODEL)
    assert "billed" not in str(info.value) and "nothing was sent" in str(info.value)
    assert len(script.posts) == 1  # the same request would fail the same way


def test_corrupt_compressed_body_is_a_recorded_response_error() -> None:
    def garbled(request: httpx.Request) -> httpx.Response:
        headers = {"content-encoding": "gzip", "content-type": "application/json"}
        return httpx.Response(200, stream=httpx.ByteStream(b"not gzip"), headers=headers)

    history = FakeHistory()
    client, script = make(garbled, OK, history=history, retry_billed=True)
    with pytest.raises(ResponseError, match="decode"):
        client.generate("p", model=MODEL)
    assert len(script.posts) == 1 and len(history.failures) == 1


def _url_result(url: str) -> httpx.Response:
    return httpx.Response(200, json={"created": 1, "data": [{"url": url}]})


def test_download_redirect_loop_is_a_recorded_response_error() -> None:
    url = "https://files.test/cdn/loop.png"
    history = FakeHistory()
    client, script = make(_url_result(url), history=history)
    script.downloads = {url: httpx.Response(302, headers={"Location": url})}
    with pytest.raises(ResponseError, match=r"files\.test"):
        client.generate("p", model="dall-e-3")
    assert len(history.failures) == 1


@pytest.mark.parametrize("url", ["http://", "https://exa mple.test:99999/a.png"])
def test_unusable_download_url_is_a_response_error(url: str) -> None:
    client, _ = make(_url_result(url))
    with pytest.raises(ResponseError):
        client.generate("p", model="dall-e-3")


def test_completed_stream_event_with_a_null_error_field_succeeds() -> None:
    event = {"type": "image_generation.completed", "b64_json": b64(png()), "error": None}
    client, _ = make(sse(f"data: {json.dumps(event)}\n\n"))
    assert client.generate("p", model=MODEL, partial_images=1).ok


def test_logs_never_format_the_key(fake_key: str, caplog: pytest.LogCaptureFixture) -> None:
    """Not from cometnb, nor from httpx/httpcore logging a URL the server built with the key."""
    url = f"https://files.test/cdn/a.png?token={fake_key}"
    client, script = make(_url_result(url), api_key=fake_key)
    script.downloads = {url: httpx.Response(200, content=png())}
    with caplog.at_level("DEBUG"):
        assert client.generate("p", model="dall-e-3").ok
        failing, _ = make(err(401, f"bad key {fake_key}"), api_key=fake_key)
        with pytest.raises(AuthenticationError):
            failing.generate("p", model=MODEL)
    assert caplog.records, "httpx logs each request at INFO"
    assert fake_key not in caplog.text
    assert all(fake_key not in r.getMessage() for r in caplog.records)


def test_max_retries_counts_every_retry_safe_and_billed_alike() -> None:
    """429 (safe), then 500 (billed, opted in), then 503: with max_retries=2 that is 3 POSTs."""
    client, script = make(err(429), err(500), err(503), OK, retry_billed=True, max_retries=2)
    with pytest.raises(APIError) as info:
        client.generate("p", model=MODEL)
    assert info.value.status == 503 and len(script.posts) == 3
    none, script = make(err(429), OK, max_retries=0)
    with pytest.raises(RateLimitError):
        none.generate("p", model=MODEL)
    assert len(script.posts) == 1


def test_final_image_before_all_partials_and_no_done_marker() -> None:
    """partial_images=3, but the server sends one partial then the final image, no [DONE]."""
    partial = {"type": "image_generation.partial_image", "b64_json": b64(png(2, 2))}
    final = {"type": "image_generation.completed", "b64_json": b64(png(8, 4)), "usage": {"x": 1}}
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in (partial, final))
    client, _ = make(sse(text))
    seen: list[int] = []
    gen = client.generate(
        "p", model=MODEL, partial_images=3, on_partial=lambda i, d: seen.append(i)
    )
    assert seen == [0] and (gen.image.width, gen.image.height) == (8, 4)
