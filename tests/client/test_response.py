"""Response parsing and error mapping: every fixture, every status class, every bad body."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import SHARED_FIXTURES

from cometnb._client.exchange import (
    failure_from_exception,
    failure_from_status,
    parse_request_id,
    parse_result,
    safe_excerpt,
)
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResponseError,
    register_secret,
)

FIXTURES = SHARED_FIXTURES
HOST = "api.test"


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _error(message: str, code: str | None = "", type_: str = "comet_api_error") -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": type_, "param": "", "code": code}}
    ).encode()


# ----------------------------------------------------------------------------- results


def test_parse_gpt_image_fixture_keeps_usage_created_and_meta() -> None:
    parsed = parse_result(_fixture("gpt-image-2.json"))
    assert parsed.created == 1776841943
    assert parsed.usage is not None and parsed.usage["total_tokens"] == 224
    assert parsed.meta == {
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "jpeg",
    }
    assert parsed.items[0].b64_json is not None and parsed.items[0].url is None


def test_parse_dalle_url_fixture_keeps_revised_prompt() -> None:
    parsed = parse_result(_fixture("dall-e-3-url.json"))
    item = parsed.items[0]
    assert item.url is not None and item.url.startswith("https://filesystem.site/")
    assert item.revised_prompt is not None and item.revised_prompt.startswith("A paper boat")
    assert parsed.usage is None and parsed.meta == {}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"created": 1, "data": [{"b64_json": "AAAA"', "malformed JSON"),
        (b"<html><body>Welcome</body></html>", "HTML page"),
        (b"[1, 2]", "not an object"),
        (b'{"created": 1}', "without any images"),
        (b'{"created": 1, "data": []}', "without any images"),
        (b'{"created": 1, "data": [{"revised_prompt": "x"}]}', "neither b64_json nor url"),
        (b'{"created": 1, "data": ["oops"]}', "malformed image entry"),
    ],
)
def test_unusable_bodies_raise_response_error(body: bytes, words: str) -> None:
    with pytest.raises(ResponseError, match=words):
        parse_result(body, HOST)


def test_error_object_in_a_200_body_is_an_api_error() -> None:
    with pytest.raises(APIError, match="bad thing"):
        parse_result(_error("bad thing"), HOST)


# ----------------------------------------------------------------------------- statuses


def test_comet_error_fixture_401_is_authentication_error_with_request_id() -> None:
    failure = failure_from_status(401, {}, _fixture("error-comet.json"), HOST)
    error = failure.error
    assert isinstance(error, AuthenticationError)
    assert failure.safety == "never"
    assert error.status == 401
    assert error.request_id == "20260312093015123456789abcdef"
    assert error.type == "comet_api_error"
    assert error.code is None and error.param is None  # CometAPI sends "" for both
    assert "HTTP 401" in str(error) and "Invalid token" in str(error)
    assert "COMETAPI_KEY" in str(error)


def test_moderation_fixture_is_never_retried_and_says_content_policy() -> None:
    failure = failure_from_status(400, {}, _fixture("error-moderation.json"), HOST)
    assert failure.safety == "never"
    assert isinstance(failure.error, APIError)
    assert failure.error.code == "moderation_blocked"
    assert "content policy" in str(failure.error) and "not retried" in str(failure.error)


def test_dalle_content_policy_code_is_never_retried() -> None:
    body = _error("rejected", "content_policy_violation", "invalid_request_error")
    failure = failure_from_status(400, {}, body, HOST)
    assert failure.safety == "never"
    assert "content policy" in str(failure.error)


def test_429_is_rate_limit_error_and_safe_with_retry_after() -> None:
    failure = failure_from_status(429, {"Retry-After": "1"}, _error("slow down"), HOST)
    assert isinstance(failure.error, RateLimitError)
    assert failure.safety == "safe"
    assert failure.retry_after == 1.0
    assert failure.reason == "HTTP 429"


@pytest.mark.parametrize(
    "body",
    [
        _error("You exceeded your current quota", "insufficient_quota"),
        _error("Your account balance is too low (request id: abc)"),
        _error("用户余额不足"),
    ],
)
def test_429_with_exhausted_quota_fails_at_once_with_hint(body: bytes) -> None:
    failure = failure_from_status(429, {}, body, HOST)
    assert failure.safety == "never"
    assert isinstance(failure.error, RateLimitError)
    assert "top up" in str(failure.error)


def test_500_invalid_request_is_a_bad_request_not_a_server_error() -> None:
    failure = failure_from_status(500, {}, _error("bad size", "invalid_request"), HOST)
    assert failure.safety == "never"
    assert "bad request" in str(failure.error)


@pytest.mark.parametrize(
    ("status", "safety"),
    [(500, "billed"), (502, "billed"), (504, "billed"), (524, "billed"), (408, "billed"),
     (409, "billed"), (503, "safe"), (400, "never"), (403, "never"), (404, "never"),
     (413, "never")],
)  # fmt: skip
def test_status_classes(status: int, safety: str) -> None:
    failure = failure_from_status(status, {}, _error("nope"), HOST)
    assert failure.safety == safety
    assert isinstance(failure.error, APIError)
    assert failure.error.status == status
    assert f"HTTP {status}" in str(failure.error)


def test_403_is_authentication_error() -> None:
    assert isinstance(failure_from_status(403, {}, _error("no"), HOST).error, AuthenticationError)


def test_redirect_means_wrong_base_url() -> None:
    failure = failure_from_status(301, {"Location": "https://x/"}, b"", HOST)
    assert failure.safety == "never"
    assert "base_url" in str(failure.error) and "301" in str(failure.error)


def test_html_error_page_gives_a_short_excerpt_and_a_hint() -> None:
    page = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>" + b"x" * 5000
    failure = failure_from_status(404, {}, page, HOST)
    text = str(failure.error)
    assert "HTML page" in text and "404 Not Found" in text and "base_url" in text
    assert "<" not in text and len(text) < 400


def test_non_json_5xx_keeps_its_status_safety() -> None:
    failure = failure_from_status(503, {"Retry-After": "2"}, b"upstream overloaded", HOST)
    assert failure.safety == "safe" and failure.retry_after == 2.0
    assert "non-JSON" in str(failure.error)


def test_x_should_retry_is_parsed() -> None:
    failure = failure_from_status(429, {"x-should-retry": "false"}, _error("x"), HOST)
    assert failure.should_retry is False


def test_a_key_echoed_by_the_server_is_redacted_everywhere(fake_key: str) -> None:
    register_secret(fake_key)
    body = _error(f"Invalid token {fake_key} (request id: r1)")
    error = failure_from_status(401, {}, body, HOST).error
    assert isinstance(error, APIError)
    for text in (str(error), repr(error), json.dumps(error.body), error.message):
        assert fake_key not in text
    html_error = failure_from_status(500, {}, f"<p>key={fake_key}</p>".encode(), HOST).error
    assert fake_key not in str(html_error) and fake_key not in str(html_error.body)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- transport


def test_connect_errors_are_safe_and_name_the_host() -> None:
    failure = failure_from_exception(httpx.ConnectError("[Errno 111] Connection refused"), HOST, 60)
    assert failure.safety == "safe" and failure.reason == "connection refused"
    assert isinstance(failure.error, APIError) and failure.error.status is None
    assert HOST in str(failure.error)
    assert failure_from_exception(httpx.ConnectTimeout("t"), HOST, 60).safety == "safe"


def test_read_timeout_may_have_been_billed() -> None:
    failure = failure_from_exception(httpx.ReadTimeout("timed out"), HOST, 600)
    assert failure.safety == "billed"
    assert isinstance(failure.error, APIError) and failure.error.status is None
    assert "600 s" in str(failure.error) and "billed" in str(failure.error)


@pytest.mark.parametrize(
    "exc",
    [httpx.RemoteProtocolError("Server disconnected"), httpx.ReadError("reset"),
     httpx.WriteError("broken pipe")],
)  # fmt: skip
def test_dropped_connections_after_sending_may_have_been_billed(exc: httpx.TransportError) -> None:
    failure = failure_from_exception(exc, HOST, 60)
    assert failure.safety == "billed"
    assert "dropped" in str(failure.error)


def test_helpers() -> None:
    assert parse_request_id("Bad (request id: 2026ab)") == "2026ab"
    assert parse_request_id("no id here") is None
    assert safe_excerpt("<b>Hi</b>   there &amp; more") == "Hi there & more"
    assert len(safe_excerpt("y" * 1000)) == 120
