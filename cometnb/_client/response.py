"""Turn what the server sent into results or into one clear error (no I/O here).

* :func:`parse_result` — a JSON ``ImagesResponse`` → :class:`ParsedResponse` (items still
  base64 or URLs; decoding and downloads happen in the client).
* :func:`failure_from_status` — an HTTP error status + body →
  :class:`~cometnb._client.retry.Failure` (the mapped :class:`CometError` plus how risky a
  retry is).
* :func:`failure_from_exception` — an httpx transport error → a ``Failure``.
* :func:`api_error_from_body` — an OpenAI-style ``{"error": {...}}`` object → ``APIError``.

Every text that came from the server is passed through :func:`redact` before it is kept.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx

from cometnb._client.retry import Failure, parse_retry_after, parse_should_retry
from cometnb._core.billing import BillingRisk, status_risk
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    RateLimitError,
    ResponseError,
    redact,
)
from cometnb._core.text import clip

__all__ = [
    "META_KEYS",
    "MODERATION_CODES",
    "READ_TIMEOUT",
    "ParsedResponse",
    "ResultItem",
    "api_error_from_body",
    "failure_from_exception",
    "failure_from_status",
    "is_quota_exhausted",
    "parse_request_id",
    "parse_result",
    "result_from_payload",
    "safe_excerpt",
]

# Top-level response fields GPT image models send about the result.
META_KEYS = ("size", "quality", "background", "output_format")
MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
# Shown to people, never read back: the failure's BillingRisk says what it cost.
READ_TIMEOUT = "No response from {host} within {timeout:g} s (read timeout)."

_REQUEST_ID = re.compile(r"\(request id:\s*([^)\s]+)\s*\)", re.IGNORECASE)
# English and Chinese wordings CometAPI uses when an account has run out of credit.
# Whole words: "load balancer is saturated" is a rate limit, not a spent balance.
_QUOTA_WORDS = re.compile(r"\b(?:quota|balance|insufficient|credits?)\b|额度|余额", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")

KEY_HINT = (
    "Run %cometimg_key, or set COMETAPI_KEY (in the environment or a .env file beside the "
    "notebook)."
)
MODERATION_HINT = (
    "The prompt was refused by the content policy; the same prompt gets the same verdict, "
    "so it was not retried. Rephrase the prompt."
)
QUOTA_HINT = (
    "Your CometAPI quota or balance is exhausted: top up the account (retrying won't help)."
)
RATE_HINT = (
    "The service is rate limiting; the request was never billed. Wait a minute, or lower the "
    "concurrency."
)


@dataclass
class ResultItem:
    """One entry of ``data[]``: base64 bytes or a URL (exactly one is used), maybe a revision."""

    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


@dataclass
class ParsedResponse:
    """A successful answer, parsed but not yet decoded or downloaded."""

    items: list[ResultItem]
    created: int | None = None
    usage: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- results


def parse_result(content: bytes | str, host: str = "the server") -> ParsedResponse:
    """Parse a JSON ``ImagesResponse`` body; :class:`ResponseError` when it is unusable.

    Example::

        >>> parse_result(b'{"created": 1, "data": [{"url": "https://x/y.png"}]}').items[0].url
        'https://x/y.png'
    """
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    try:
        payload = json.loads(text)
    except ValueError:
        if text.lstrip().startswith("<"):
            raise ResponseError(
                f"{host} answered with an HTML page instead of JSON: {safe_excerpt(text)!r}",
                hint="Check base_url (it should point at the API, ending in /v1).",
            ) from None
        raise ResponseError(
            f"{host} answered with malformed JSON: {safe_excerpt(text)!r}",
            hint="The response was cut off or corrupted; the generation may have been billed.",
        ) from None
    return result_from_payload(payload, host)


def result_from_payload(payload: Any, host: str = "the server") -> ParsedResponse:
    """Validate an already-decoded JSON response (see :func:`parse_result`)."""
    if not isinstance(payload, dict):
        raise ResponseError(f"{host} answered with JSON that is not an object")
    if payload.get("error") and not payload.get("data"):
        raise api_error_from_body(None, payload, host)
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise ResponseError(f"{host} answered without any images (no 'data' items)")
    items = [_item(entry, i, host) for i, entry in enumerate(data)]
    usage = payload.get("usage")
    created = payload.get("created")
    return ParsedResponse(
        items=items,
        created=created if isinstance(created, int) else None,
        usage=usage if isinstance(usage, dict) else None,
        meta={k: payload[k] for k in META_KEYS if payload.get(k) is not None},
    )


def _item(entry: Any, index: int, host: str) -> ResultItem:
    if not isinstance(entry, dict):
        raise ResponseError(f"{host} answered with a malformed image entry (data[{index}])")
    b64, url, revised = entry.get("b64_json"), entry.get("url"), entry.get("revised_prompt")
    if not (isinstance(b64, str) and b64) and not (isinstance(url, str) and url):
        raise ResponseError(f"{host} answered with data[{index}] holding neither b64_json nor url")
    return ResultItem(
        b64_json=b64 if isinstance(b64, str) and b64 else None,
        url=url if isinstance(url, str) and url else None,
        revised_prompt=revised if isinstance(revised, str) else None,
    )


# ----------------------------------------------------------------------------- errors


def parse_request_id(message: str) -> str | None:
    """CometAPI ends messages with ``(request id: …)``; return the id."""
    found = _REQUEST_ID.search(message or "")
    return found.group(1) if found else None


def safe_excerpt(text: str, limit: int = 120) -> str:
    """A short, single-line, tag-free and redacted excerpt of a body for an error message."""
    flat = " ".join(html.unescape(_TAG.sub(" ", text)).split())
    return clip(redact(flat), limit)


def is_quota_exhausted(error: Mapping[str, Any]) -> bool:
    """True when a 429 body says the quota/balance is gone (so waiting will not help)."""
    if str(error.get("code") or "") in ("insufficient_quota", "quota_exceeded"):
        return True
    return bool(_QUOTA_WORDS.search(str(error.get("message") or "")))


def _error_fields(payload: Any) -> dict[str, Any] | None:
    """The ``error`` object of a body, normalised to a dict (``None`` if there is none)."""
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if isinstance(err, dict):
        return err
    if isinstance(err, str):
        return {"message": err}
    return None


def _status_text(status: int | None) -> str:
    if status is None:
        return "the request"
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def api_error_from_body(status: int | None, payload: Any, host: str) -> APIError:
    """The :class:`APIError` (or subclass) for an OpenAI/CometAPI error body."""
    err = _error_fields(payload) or {}
    message = redact(str(err.get("message") or "").strip()) or "no error message"
    code = _str_or_none(err.get("code"))
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "param": _str_or_none(err.get("param")),
        "type": _str_or_none(err.get("type")),
        "request_id": parse_request_id(message),
        "body": _redacted_body(payload),
    }
    text = f"{_status_text(status)} from {host}: {message}"
    if code in MODERATION_CODES or err.get("type") == "image_generation_user_error":
        return APIError(text, hint=MODERATION_HINT, **fields)
    if status in (401, 403):
        hint = KEY_HINT if status == 401 else "The key may not be allowed to use this model."
        return AuthenticationError(text, hint=hint, **fields)
    if status == 429:
        hint = QUOTA_HINT if is_quota_exhausted(err) else RATE_HINT
        return RateLimitError(text, hint=hint, **fields)
    return APIError(text, hint=_status_hint(status, code), **fields)


def _status_hint(status: int | None, code: str | None) -> str | None:
    if status == 404:
        return "Check the model name and base_url."
    if status == 413:
        return "The request body is too large; shorten the prompt."
    if status is not None and status >= 500 and code == "invalid_request":
        return "CometAPI reports this as a server error but it is a bad request; fix the request."
    if status == 503:
        return "The service is overloaded; try again in a minute."
    return None


def _redacted_body(payload: Any) -> Any:
    try:
        return json.loads(redact(json.dumps(payload)))
    except (TypeError, ValueError):
        return None


def failure_from_status(
    status: int, headers: Mapping[str, str], content: bytes, host: str
) -> Failure:
    """Map an error response to the error to raise and how risky a retry would be."""
    retry_after = parse_retry_after(headers)
    should_retry = parse_should_retry(headers)
    reason = f"HTTP {status}"
    if 300 <= status < 400:
        error = APIError(
            f"{_status_text(status)} from {host}: the API answered with a redirect",
            status=status,
            hint="The base_url looks wrong (it should end in /v1); check base_url.",
        )
        return Failure(error, BillingRisk.REFUSED, reason)
    text = content.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    err = _error_fields(payload)
    if err is None:
        return Failure(
            _non_json_error(status, text, host),
            status_risk(status),
            reason,
            retry_after,
            should_retry,
        )
    error = api_error_from_body(status, payload, host)
    return Failure(error, _body_risk(status, err), reason, retry_after, should_retry)


def _body_risk(status: int, err: Mapping[str, Any]) -> BillingRisk:
    code = str(err.get("code") or "")
    if code in MODERATION_CODES or err.get("type") == "image_generation_user_error":
        return BillingRisk.REFUSED
    if status == 429 and is_quota_exhausted(err):
        return BillingRisk.REFUSED
    if status >= 500 and code == "invalid_request":  # CometAPI's 400-class "500"
        return BillingRisk.REFUSED
    return status_risk(status)


def _non_json_error(status: int, text: str, host: str) -> APIError:
    looks_html = "<html" in text[:500].lower() or "<!doctype" in text[:500].lower()
    what = "an HTML page" if looks_html else "a non-JSON body"
    excerpt = safe_excerpt(text)
    detail = f": {excerpt!r}" if excerpt else ""
    cls = RateLimitError if status == 429 else APIError
    if status in (401, 403):
        cls = AuthenticationError
    hint = "Check base_url (it should point at the API, ending in /v1)."
    if status >= 500:
        hint = "The service or a proxy in front of it failed; try again later, and check base_url."
    return cls(
        f"{_status_text(status)} from {host}, which answered with {what}{detail}",
        status=status,
        body=excerpt or None,
        hint=hint,
    )


def failure_from_exception(exc: httpx.RequestError, host: str, timeout: float) -> Failure:
    """Map an httpx request error; only errors before the request left are "safe"."""
    early = _failure_before_sending(exc, host)
    if early is not None:
        return early
    if isinstance(exc, httpx.DecodingError):
        undecodable = ResponseError(
            f"Could not decode the answer from {host} (corrupt compressed body).",
            hint="The generation may have been billed, so it was not retried.",
        )
        return Failure(undecodable, BillingRisk.ANSWERED_UNUSABLE, "undecodable body")
    if isinstance(exc, httpx.ReadTimeout):
        error = APIError(
            READ_TIMEOUT.format(host=host, timeout=timeout),
            hint="The generation may still have been billed, so it was not retried; raise the "
            "timeout or stream with partial_images.",
        )
        return Failure(error, BillingRisk.SENT_NO_ANSWER, "read timeout")
    error = APIError(
        f"The connection to {host} dropped after the request was sent "
        f"({type(exc).__name__}: {redact(str(exc)) or 'no detail'}).",
    )
    return Failure(error, BillingRisk.SENT_NO_ANSWER, "connection dropped")


_NOT_SENT = BillingRisk.NOT_SENT


def _failure_before_sending(exc: httpx.RequestError, host: str) -> Failure | None:
    """Errors raised before the server could see the request: nothing was billed."""
    if isinstance(exc, httpx.ConnectTimeout):
        return Failure(_connect_error(host, "connection timed out"), _NOT_SENT, "connect timeout")
    if isinstance(exc, httpx.ConnectError):
        why = _connect_reason(exc)
        return Failure(_connect_error(host, why), _NOT_SENT, why)
    if isinstance(exc, httpx.PoolTimeout):  # never left this process
        return Failure(_connect_error(host, "no free connection"), _NOT_SENT, "pool timeout")
    if isinstance(exc, httpx.ProxyError):  # the tunnel failed before the request went through
        return Failure(_connect_error(host, "the proxy refused"), _NOT_SENT, "proxy error")
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        # Raised by this side while writing the request: the same request fails the same way.
        # Its text may quote header values, so only the type is shown.
        error = APIError(
            f"The request to {host} could not be sent ({type(exc).__name__}); nothing was sent.",
            hint="Check base_url and any extra request fields.",
        )
        return Failure(error, _NOT_SENT, "request not sent", should_retry=False)
    return None


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "reset" in text:
        return "connection reset"
    if "name" in text or "resolve" in text or "nodename" in text:
        return "host name not found"
    return "connection failed"


def _connect_error(host: str, why: str) -> APIError:
    return APIError(
        f"Could not connect to {host}: {why}.",
        hint="Check the network connection and base_url; nothing was sent or billed.",
    )
