"""Response parsing and error mapping: every fixture, every status class, every bad body."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from conftest import SHARED_FIXTURES
from PIL import Image

from cometnb._client.exchange import (
    _lift_base64,
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
from cometnb._core.images import decode_b64_image

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


def _plain(body: bytes) -> list[tuple[bytes | None, str | None, str | None]]:
    """What each item decodes to when the body is parsed whole, as text (no lifting)."""
    parsed = parse_result(body.decode())
    return [(_b64(i.b64_json), i.url, i.revised_prompt) for i in parsed.items]


def _b64(value: str | bytes | None) -> bytes | None:
    return None if value is None else decode_b64_image(value)


@pytest.mark.parametrize(
    "name", ["gpt-image-2.json", "edit-gpt-image.json", "dall-e-3-url.json", "seedream-url.json"]
)
def test_every_fixture_parses_alike_with_base64_cut_from_the_bytes(name: str) -> None:
    body = _fixture(name)
    parsed = parse_result(body)
    assert [(_b64(i.b64_json), i.url, i.revised_prompt) for i in parsed.items] == _plain(body)
    plain = parse_result(body.decode())
    assert (parsed.created, parsed.usage, parsed.meta) == (plain.created, plain.usage, plain.meta)


def _image_b64(seed: int) -> str:
    picture = Image.new("RGB", (64 + seed, 48), (seed * 40 % 256, 90, 200))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_several_images_are_cut_out_whatever_the_spacing() -> None:
    images = [_image_b64(i) for i in range(3)]
    first, second, third = images
    body = (
        f'{{"created":1,\n "data" : [ {{"b64_json":"{first}"}},\r\n{{ "revised_prompt": "a, b",'
        f'\t"b64_json" :\n "{second}" }} , {{"b64_json": "{third}","url":null}}],'
        '"usage":{"total_tokens":9}}'
    ).encode()
    parsed = parse_result(body)
    assert [i.b64_json for i in parsed.items] == [x.encode() for x in images]
    assert parsed.items[1].revised_prompt == "a, b"
    assert parsed.usage == {"total_tokens": 9}
    assert _lift_base64(body) is not None


def test_the_key_written_inside_a_string_is_not_taken_for_the_key() -> None:
    image = _image_b64(1)
    body = json.dumps(
        {
            "data": [
                {"revised_prompt": 'say {"b64_json": "AAAA"}, "b64_json":"BBBB"', "b64_json": image}
            ]
        }
    ).encode()
    item = parse_result(body).items[0]
    assert item.revised_prompt == 'say {"b64_json": "AAAA"}, "b64_json":"BBBB"'
    assert item.b64_json == image.encode()


def test_an_escaped_value_and_a_cut_off_body_take_the_ordinary_path() -> None:
    escaped = b'{"data": [{"b64_json": "QUJD\\/w=="}]}'  # a server escaping "/" as JSON allows
    assert _lift_base64(escaped) is None
    assert parse_result(escaped).items[0].b64_json == "QUJD/w=="
    cut = b'{"data": [{"b64_json": "QUJDRA'
    assert _lift_base64(cut) is None
    with pytest.raises(ResponseError, match="malformed JSON"):
        parse_result(cut, HOST)
    broken_after = b'{"data": [{"b64_json": "QUJD"}], "usage": {'
    with pytest.raises(ResponseError, match="malformed JSON"):
        parse_result(broken_after, HOST)


def test_a_server_value_that_looks_like_a_placeholder_stays_its_own() -> None:
    # The server's "#1" is cut out like any value and comes back as itself, never as image 1.
    image = _image_b64(2)
    body = (
        '{"data": [{"b64_json": null, "url": "https://x/y.png"}, {"b64_json": "#1"}, '
        f'{{"b64_json": "{image}"}}]}}'
    ).encode()
    parsed = parse_result(body)
    assert [i.b64_json for i in parsed.items] == [None, b"#1", image.encode()]
    with pytest.raises(ResponseError, match="base64"):
        decode_b64_image(parsed.items[1].b64_json or "")


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
