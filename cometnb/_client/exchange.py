"""One request's exchange with the API, without doing any I/O: what is sent, what comes back.

* The wire form of an edit: multipart ``POST /v1/images/edits`` (one input as an ``image``
  part, several as repeated ``image[]`` parts, each with a filename and its content type; the
  mask a ``mask`` part, 2.6's markup a ``markup`` part, every other field a text part), or
  Seedream's data-URI references in the JSON ``image`` array (API_FACTS.md §7).
  :func:`describe_edit` is what ``--dry-run`` shows: fields and inputs by name, type and size,
  never the bytes.
* The answer: :func:`parse_result` (a JSON ``ImagesResponse`` → :class:`ParsedResponse`),
  :func:`failure_from_status` / :func:`failure_from_exception` (an HTTP error or a transport
  error → a :class:`~cometnb._client.retry.Failure`, its :class:`~cometnb._core.billing.
  BillingRisk` set here), :func:`api_error_from_body`. Server text is redacted before kept.
* Server-sent events for ``stream: true`` (API_FACTS.md §3): :class:`SSEDecoder` (lines →
  events; :class:`CappedSSEDecoder` bounds each event), :class:`StreamAssembler` (partial
  images, ``image_generation.completed``, ``error`` objects, ``[DONE]``).
* The steps (sans-I/O, as in h11): :func:`request_steps` yields a :class:`Send` (POST once),
  a :class:`Download` (GET an image URL) or a :class:`Sleep` (before a retry) and receives
  each outcome back through ``send()``. The retry loop, the billing-aware retry decisions and
  the downloads exist once, here; the blocking and the async client only perform the steps.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeGuard

import httpx

from cometnb._client.http import BILLED_HINT, megabytes
from cometnb._client.retry import (
    QUOTA_HINT,
    RATE_LIMITED_REASON,
    Failure,
    RetryPolicy,
    parse_retry_after,
    parse_should_retry,
)
from cometnb._client.runner import (
    MAX_STALLS,
    RATE_LIMIT_REASON,
    Pacer,
    RateLimits,
    Ticket,
)
from cometnb._core.billing import BillingRisk, final_risk, status_risk
from cometnb._core.byte_limits import DEFAULT_LIMITS, ByteLimits
from cometnb._core.edit_inputs import EditBody, ImageInput
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CometError,
    NotSent,
    RateLimitError,
    ResponseError,
    redact,
)
from cometnb._core.generations import ApiImage, ApiResult, ClientEvent
from cometnb._core.images import decode_b64_image, inspect_image
from cometnb._core.model_registry import edit_route
from cometnb._core.protocols import OnEvent, OnPartial
from cometnb._core.secret import Secret
from cometnb._core.svg import is_svg
from cometnb._core.text import clip

__all__ = [
    "COMPLETED",
    "META_KEYS",
    "MODERATION_CODES",
    "PARTIAL",
    "READ_TIMEOUT",
    "Attempt",
    "CappedSSEDecoder",
    "Download",
    "FilePart",
    "ParsedResponse",
    "Partial",
    "RequestSteps",
    "ResultItem",
    "SSEDecoder",
    "SSEEvent",
    "Send",
    "Sleep",
    "Step",
    "StreamAssembler",
    "StreamReader",
    "api_error_from_body",
    "describe_edit",
    "edit_path",
    "failure_from_exception",
    "failure_from_status",
    "form_fields",
    "is_multipart",
    "is_quota_exhausted",
    "json_with_references",
    "multipart_files",
    "notify",
    "parse_request_id",
    "parse_result",
    "request_steps",
    "result_from_payload",
    "safe_excerpt",
]


# --- the wire form of an edit ---------------------------------------------------------------------

FilePart = tuple[str, tuple[str, bytes, str]]


def edit_path(body: Mapping[str, Any]) -> str:
    """The path below the base URL this body goes to."""
    if (
        isinstance(body, EditBody)
        and body.images
        and edit_route(str(body.get("model"))) == "multipart"
    ):
        return "/images/edits"
    return "/images/generations"


def is_multipart(body: Mapping[str, Any]) -> TypeGuard[EditBody]:
    """True when ``body`` is an edit that goes as multipart to ``/images/edits``."""
    return edit_path(body) == "/images/edits"


def form_fields(body: Mapping[str, Any]) -> dict[str, str]:
    """The text parts: every field as the string a form carries (``true``, ``2``, JSON)."""
    return {str(k): _text(v) for k, v in body.items() if v is not None}


def multipart_files(body: EditBody) -> list[FilePart]:
    """The file parts in order: ``image`` (one input) or ``image[]`` (several), then ``mask``
    or ``markup`` (each under its role's name)."""
    name = "image" if len(body.images) == 1 else "image[]"
    parts: list[FilePart] = [
        (name, (img.filename, img.data, img.content_type)) for img in body.images
    ]
    for role, layer in body.inputs[len(body.images) :]:
        parts.append((role, (_layer_name(role, layer), layer.data, layer.content_type)))
    return parts


def json_with_references(body: Mapping[str, Any]) -> dict[str, Any]:
    """A generations JSON body with the references as data URIs (seedream's ``image``)."""
    out = dict(body)
    if isinstance(body, EditBody) and body.images:
        out["image"] = [_data_uri(img) for img in body.images]
    return out


def describe_edit(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an edit would send, for ``--dry-run``: fields and inputs, no bytes and no key."""
    if not isinstance(body, EditBody) or not body.images:
        return dict(body)
    shown: dict[str, Any] = {"endpoint": edit_path(body)}
    if is_multipart(body):
        shown["multipart fields"] = form_fields(body)
        shown["files"] = [
            {"part": part, **_input_info(img), "filename": sent[0]}  # the name as uploaded
            for (part, sent), img in zip(multipart_files(body), _all_inputs(body), strict=True)
        ]
    else:
        shown["json"] = dict(body)
        shown["image (data URIs)"] = [_input_info(img) for img in body.images]
    return shown


def _all_inputs(body: EditBody) -> list[ImageInput]:
    return [img for _, img in body.inputs]


def _input_info(img: ImageInput) -> dict[str, Any]:
    info: dict[str, Any] = {
        "source": img.label,
        "filename": img.filename,
        "content_type": img.content_type,
        "size": f"{img.width}x{img.height}",
        "bytes": img.size_bytes,
    }
    if img.record_id:
        info["record"] = img.record_id if img.index in (None, 0) else f"{img.record_id}:{img.index}"
    return info


def _layer_name(role: str, layer: ImageInput) -> str:
    return layer.filename if layer.filename.startswith(role) else f"{role}-{layer.filename}"


def _data_uri(img: ImageInput) -> str:
    return f"data:{img.content_type};base64,{base64.b64encode(img.data).decode('ascii')}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


# --- the answer: results or one clear error -------------------------------------------------------

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
RATE_HINT = (
    "The service is rate limiting; the request was never billed. Wait a minute, or lower the "
    "concurrency."
)


@dataclass
class ResultItem:
    """One entry of ``data[]``: base64 bytes or a URL (exactly one is used), maybe a revision."""

    b64_json: str | bytes | None = None  # bytes: cut from the raw body by _lift_base64
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
    lifted = _lift_base64(content) if isinstance(content, bytes) else None
    if lifted is not None:
        rest, images = lifted
        try:
            payload = json.loads(rest.decode("utf-8", "replace"))
        except ValueError:
            pass  # malformed: parsed again whole below, so the error quotes the body as it came
        else:
            return result_from_payload(payload, host, images)
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


_B64_KEY = b'"b64_json"'
_JSON_SPACE = b" \t\r\n"


def _lift_base64(body: bytes) -> tuple[bytes, list[bytes]] | None:
    """The body with each ``"b64_json"`` string value cut out and replaced by ``"#<i>"``, and
    the values cut out; ``None`` when a value holds an escape (or is cut off), so the caller
    parses the whole body.

    Why: an answer is megabytes of base64 in a few bytes of JSON. Decoded to ``str`` and parsed,
    the base64 is copied twice more before it is decoded; cut out of the bytes, once. A base64
    value holds no ``"``, so its end is the next ``"``; a ``\\`` (a server writing ``\\/``)
    sends the body down the ordinary path. The key must follow ``{`` or ``,`` (whitespace
    between): inside a JSON string every ``"`` follows a backslash, so a string that merely
    contains the text cannot be taken for the key.
    """
    rest: list[bytes] = []
    values: list[bytes] = []
    done = 0  # the body up to here is in ``rest``
    at = body.find(_B64_KEY)
    while at != -1:
        before = body[_skip_space(body, at - 1, -1) : at][:1]
        colon = _skip_space(body, at + len(_B64_KEY))
        quote = _skip_space(body, colon + 1)
        if (
            before in (b"{", b",")
            and body[colon : colon + 1] == b":"
            and body[quote : quote + 1] == b'"'
        ):
            end = body.find(b'"', quote + 1)
            if end == -1 or body.find(b"\\", quote + 1, end) != -1:
                return None
            rest += (body[done : quote + 1], b"#%d" % len(values))
            values.append(body[quote + 1 : end])
            done = end
        at = body.find(_B64_KEY, at + len(_B64_KEY))
    if not values:
        return None
    rest.append(body[done:])
    return b"".join(rest), values


def _skip_space(body: bytes, at: int, step: int = 1) -> int:
    """The first index from ``at`` (going by ``step``) that is not JSON whitespace."""
    while 0 <= at < len(body) and body[at] in _JSON_SPACE:
        at += step
    return at


def result_from_payload(
    payload: Any, host: str = "the server", lifted: list[bytes] | None = None
) -> ParsedResponse:
    """Validate an already-decoded JSON response (see :func:`parse_result`); ``lifted`` holds
    the base64 values :func:`_lift_base64` cut out, which ``"#<i>"`` stands for."""
    if not isinstance(payload, dict):
        raise ResponseError(f"{host} answered with JSON that is not an object")
    if payload.get("error") and not payload.get("data"):
        raise api_error_from_body(None, payload, host)
    data = payload.get("data")
    if not isinstance(data, list) or not data:
        raise ResponseError(f"{host} answered without any images (no 'data' items)")
    items = [_item(entry, i, host, lifted or []) for i, entry in enumerate(data)]
    usage = payload.get("usage")
    created = payload.get("created")
    return ParsedResponse(
        items=items,
        created=created if isinstance(created, int) else None,
        usage=usage if isinstance(usage, dict) else None,
        meta={k: payload[k] for k in META_KEYS if payload.get(k) is not None},
    )


def _item(entry: Any, index: int, host: str, lifted: list[bytes]) -> ResultItem:
    if not isinstance(entry, dict):
        raise ResponseError(f"{host} answered with a malformed image entry (data[{index}])")
    b64, url, revised = entry.get("b64_json"), entry.get("url"), entry.get("revised_prompt")
    if isinstance(b64, str) and b64[:1] == "#" and b64[1:].isdigit() and int(b64[1:]) < len(lifted):
        b64 = lifted[int(b64[1:])]  # "#" is not base64: the value _lift_base64 cut out
    if not (isinstance(b64, str | bytes) and b64) and not (isinstance(url, str) and url):
        raise ResponseError(f"{host} answered with data[{index}] holding neither b64_json nor url")
    return ResultItem(
        b64_json=b64 if isinstance(b64, str | bytes) and b64 else None,
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


# --- server-sent events (stream: true) ------------------------------------------------------------

PARTIAL = "image_generation.partial_image"
COMPLETED = "image_generation.completed"
# Edits stream the same events under another name (API_FACTS §7).
PARTIALS = (PARTIAL, "image_edit.partial_image")
COMPLETEDS = (COMPLETED, "image_edit.completed")


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its ``event:`` name (if any) and the joined ``data:`` lines."""

    event: str | None
    data: str


class SSEDecoder:
    """Incremental SSE line decoder (the subset of the WHATWG rules this API needs).

    Example::

        >>> d = SSEDecoder()
        >>> [d.feed(x) for x in ("event: ping", "data: {}", "")][-1]
        SSEEvent(event='ping', data='{}')
    """

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        """Consume one line (without its newline); return an event when one is complete."""
        line = line.rstrip("\r\n")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # "id" and "retry" are irrelevant here

    def flush(self) -> SSEEvent | None:
        """End the current event (at a blank line or at the end of the stream)."""
        if not self._data:
            self._event = None
            return None
        event = SSEEvent(self._event, "\n".join(self._data))
        self._event, self._data = None, []
        return event


@dataclass(frozen=True)
class Partial:
    """A streamed preview: its 0-based index and its base64 payload."""

    index: int
    b64_json: str


class StreamAssembler:
    """Collects the events of one streamed generation into a :class:`ParsedResponse`.

    Example::

        >>> a = StreamAssembler()
        >>> a.handle(SSEEvent(None, '{"type": "image_generation.completed", "b64_json": "AA=="}'))
        >>> len(a.result().items)
        1
    """

    def __init__(self, host: str = "the server") -> None:
        self.host = host
        self.done = False
        self.partials = 0
        self._items: list[ResultItem] = []
        self._usage: dict[str, Any] | None = None
        self._created: int | None = None
        self._meta: dict[str, Any] = {}

    def handle(self, event: SSEEvent) -> Partial | None:
        """Process one event; return a :class:`Partial` for previews, raise on an error event."""
        if event.data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            payload = json.loads(event.data)
        except ValueError:
            raise ResponseError(
                f"{self.host} sent a malformed stream event (not JSON)",
                hint="The stream was corrupted; the generation may have been billed.",
            ) from None
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type") or event.event
        # Some proxies add "error": null to good events; only a real error object fails.
        if payload.get("error") or kind == "error":
            body = payload if payload.get("error") else {"error": payload}
            raise api_error_from_body(None, body, self.host)
        if kind in PARTIALS:
            return self._partial(payload)
        if kind in COMPLETEDS:
            self._completed(payload)
        return None  # unknown event types are ignored: the API may add new ones

    def _partial(self, payload: dict[str, Any]) -> Partial | None:
        b64 = payload.get("b64_json")
        if not isinstance(b64, str) or not b64:
            return None
        index = payload.get("partial_image_index")
        self.partials += 1
        return Partial(index if isinstance(index, int) else self.partials - 1, b64)

    def _completed(self, payload: dict[str, Any]) -> None:
        b64 = payload.get("b64_json")
        if not isinstance(b64, str) or not b64:
            raise ResponseError(f"{self.host} sent a completed event without an image")
        revised = payload.get("revised_prompt")
        self._items.append(ResultItem(b64, None, revised if isinstance(revised, str) else None))
        if isinstance(payload.get("usage"), dict):
            self._usage = payload["usage"]
        if isinstance(payload.get("created_at"), int):
            self._created = payload["created_at"]
        self._meta.update({k: payload[k] for k in META_KEYS if payload.get(k) is not None})

    def result(self) -> ParsedResponse:
        """The finished response; :class:`ResponseError` if no completed event arrived."""
        if not self._items:
            raise ResponseError(
                f"The stream from {self.host} ended before the final image "
                f"({self.partials} partial image(s) received).",
                hint="The generation may have been billed; it was not retried.",
            )
        return ParsedResponse(list(self._items), self._created, self._usage, dict(self._meta))


class CappedSSEDecoder(SSEDecoder):
    """An :class:`SSEDecoder` whose events (their joined ``data:`` lines) are bounded too."""

    def __init__(self, host: str, limit: int) -> None:
        super().__init__()
        self.host, self.limit = host, limit
        self._size = 0

    def feed(self, line: str) -> SSEEvent | None:
        if line.startswith("data"):
            self._size += len(line)
            if self._size > self.limit:
                self._size = 0
                self._data.clear()
                raise ResponseError(
                    f"{self.host} sent a stream event larger than {megabytes(self.limit)}; "
                    "the rest was not read.",
                    hint=BILLED_HINT,
                )
        event = super().feed(line)
        if event is not None or not line.strip():
            self._size = 0
        return event

    def flush(self) -> SSEEvent | None:
        self._size = 0
        return super().flush()


# --- the steps of one request (sans-I/O) ----------------------------------------------------------

log = logging.getLogger("cometnb")


@dataclass(frozen=True)
class Send:
    """I/O step: POST ``body`` once; the answer is an :data:`Attempt`.

    ``key`` is a :class:`Secret`, so this step's repr (in any traceback) never shows it.
    """

    body: dict[str, Any]
    key: Secret
    on_partial: OnPartial | None
    on_event: OnEvent | None
    ticket: Ticket | None = None  # the pacer's turn; the answer's rate-limit headers go here

    def note_headers(self, headers: Any) -> None:
        """Keep the answer's rate-limit headers for the pacer (the I/O side calls this)."""
        if self.ticket is not None:
            self.ticket.limits = RateLimits.from_headers(headers)


@dataclass(frozen=True)
class Download:
    """I/O step: GET an image URL; the answer is its bytes."""

    url: str


@dataclass(frozen=True)
class Sleep:
    """I/O step: wait before the next attempt; the answer is ``None``."""

    seconds: float


Step = Send | Download | Sleep
# What performing a Send gives back: the parsed answer and whether the simulator made it, or
# the Failure it ended in.
Attempt = tuple[ParsedResponse, bool] | Failure
RequestSteps = Generator[Step, Any, ApiResult]


def notify(
    callback: Callable[..., None] | None,
    *args: Any,
    lets_through: tuple[type[Exception], ...] = (),
) -> None:
    """Call a user callback; a broken display callback must not lose a billed image.

    ``lets_through``: errors the callback may raise on purpose (only the ``"sending"`` event
    lets :class:`NotSent` through: it comes before a byte of the request leaves).
    """
    if callback is None:
        return
    try:
        callback(*args)
    except lets_through:
        raise
    except Exception:
        log.exception("cometnb: a progress callback raised; ignoring it")


def request_steps(
    body: dict[str, Any],
    key: Secret,
    policy: RetryPolicy,
    on_partial: OnPartial | None,
    on_event: OnEvent | None,
    pacer: Pacer | None = None,
    *,
    patient: bool = False,
) -> RequestSteps:
    """One request from the first attempt to its result, yielding each I/O step to perform.

    Every attempt waits for its turn under ``pacer`` (the server's rate limit) first, and
    tells it how the attempt went. ``patient`` (one request of a run of several): its
    rate-limit 429s are retried while the run's patience lasts, not up to ``max_retries``.
    Returns the :class:`ApiResult` (through ``StopIteration``) or raises the final error.
    """
    retries = billed = 0
    while True:
        patience = _Patience(pacer, policy.rate_limit_patience_s, billed)
        ticket = None if pacer is None else (yield from _turn(pacer, on_event, patience))
        # Right before the POST, nothing awaited in between: a batch commits "in flight" here.
        try:
            sending = ClientEvent("sending", attempt=retries + 1)
            notify(on_event, sending, lets_through=(NotSent,))
        except NotSent as held:
            if pacer is not None:
                pacer.settle(ticket, limited=False)
            held.billing = final_risk(BillingRisk.NOT_SENT, billed)  # an earlier one may be
            raise
        outcome = yield Send(body, key, on_partial, on_event, ticket)
        if pacer is not None:
            _settle(pacer, ticket, outcome)
        if not isinstance(outcome, Failure):
            parsed, synthetic = outcome
            try:
                _check_count(parsed, body)  # before decoding any of them
                images = yield from _fetch_images(parsed, on_event)
            except CometError as error:
                # Answered, so billed: however its images turned out unusable.
                error.billing = error.billing or BillingRisk.ANSWERED_UNUSABLE
                raise
            # What the server sent is shown live (captions): never with a key it echoed.
            usage, meta = _redacted(parsed.usage), _redacted(dict(parsed.meta))
            return ApiResult(images, parsed.created, usage, meta or {}, synthetic)
        wait = _next_wait(policy, outcome, retries, billed, patient=patient and pacer is not None)
        retries, billed = retries + 1, billed + outcome.risk.may_be_billed
        _Patience(pacer, policy.rate_limit_patience_s, billed).check(wait)
        why = outcome.reason
        notify(on_event, ClientEvent("waiting", retries + 1, wait, why, may_be_billed=billed > 0))
        yield Sleep(wait)


@dataclass(frozen=True)
class _Patience:
    """How long a request waits through a storm of rate-limit 429s before giving up."""

    pacer: Pacer | None
    limit_s: float
    billed: int

    def check(self, wait: float) -> None:
        """Raise the final :class:`RateLimitError` when waiting ``wait`` more would go past."""
        storm = 0.0 if self.pacer is None else self.pacer.storm_s()
        if storm == 0.0 or storm + wait <= self.limit_s:
            return
        billed = (
            "an earlier attempt of it may have been billed"
            if self.billed
            else "it was never billed (the server refused it before any work)"
        )
        error = RateLimitError(
            f"Gave up: the server has answered only 'rate limited' (HTTP 429) for "
            f"{storm / 60:.0f} min; this request was not sent again.",
            status=429,
            hint=f"Nothing more was sent; {billed}. Wait a few minutes, or lower the "
            "concurrency, and run it again.",
        )
        error.billing = final_risk(BillingRisk.RATE_LIMITED, self.billed)
        raise error


def _turn(
    pacer: Pacer, on_event: OnEvent | None, patience: _Patience
) -> Generator[Step, Any, Ticket]:
    """Wait (as Sleep steps) until the pacer lets this attempt go; say so once."""
    waited, stalls = False, 0
    try:
        while True:
            turn = pacer.next_send(waited=waited, force=stalls >= MAX_STALLS)
            if turn.ticket is not None:
                waited = False
                return turn.ticket
            patience.check(turn.wait_s)
            if not waited:
                notify(on_event, ClientEvent("waiting", 1, turn.wait_s, RATE_LIMIT_REASON))
            waited = True
            before = pacer.now()
            yield Sleep(turn.wait_s)
            stalls += pacer.now() - before < turn.wait_s / 2  # an injected sleep did not wait
    finally:
        pacer.give_up(waited)  # cancelled while waiting: no longer counted as waiting


def _settle(pacer: Pacer, ticket: Ticket | None, outcome: Attempt) -> None:
    """Tell the pacer what the attempt met: a rate-limit 429 (not a spent quota) or not."""
    if isinstance(outcome, Failure):
        limited = outcome.reason == RATE_LIMITED_REASON and outcome.safety == "safe"
        pacer.settle(ticket, limited=limited, retry_after=outcome.retry_after)
    else:
        pacer.settle(ticket, limited=False)


def _next_wait(
    policy: RetryPolicy, failure: Failure, retries: int, billed: int, *, patient: bool
) -> float:
    """The wait before the next attempt, or raise the failure's error (final)."""
    decision = policy.decide(failure, retries, billed, patient=patient)
    if decision.wait_s is None:
        if decision.hint:
            failure.error.hint = decision.hint
        # The one place a request's final risk is set: what the ledger charges, what a batch
        # holds back and what the card says follow the same rule as what is not retried.
        failure.error.billing = final_risk(failure.risk, billed)
        raise failure.error
    log.info("cometnb: %s; retrying in %.1f s", failure.reason, decision.wait_s)
    return decision.wait_s


def _check_count(parsed: ParsedResponse, body: Mapping[str, Any]) -> None:
    """Refuse a reply holding more images than the request asked for (``n``, default 1).

    The API sends ``n`` images; a reply with 40 for ``n=1`` would cost 40 decodes and 80 files
    (a bomb made of images each under the pixel cap). It was answered, so it may be billed.
    """
    asked = body.get("n")
    expected = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else 1
    if len(parsed.items) > expected:
        error = ResponseError(
            f"The server answered with {len(parsed.items)} images for a request of "
            f"n={expected}; a reply may hold at most the images asked for, so none were kept.",
            hint="The generation may have been billed; the server misbehaved, so it was not "
            "retried.",
        )
        raise error


def _redacted(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    clean = redact(text)
    return value if clean == text else dict(json.loads(clean))


def _fetch_images(
    parsed: ParsedResponse, on_event: OnEvent | None
) -> Generator[Step, Any, list[ApiImage]]:
    """Decode base64 results; download URL results at once (they expire)."""
    images = []
    for item in parsed.items:
        if item.b64_json is not None:
            images.append(_api_image(decode_b64_image(item.b64_json), item.revised_prompt))
            continue
        assert item.url is not None
        notify(on_event, ClientEvent("downloading"))
        data = yield Download(item.url)
        images.append(_downloaded_image(data, item.url, item.revised_prompt))
    return images


def _downloaded_image(data: bytes, url: str, revised_prompt: str | None) -> ApiImage:
    """A downloaded image; the error never quotes the body (it came from an arbitrary host)."""
    try:
        return _api_image(data, revised_prompt)
    except ResponseError as exc:
        if "pixels" in exc.message:
            raise
        host = url.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1] or "the image host"
        raise ResponseError(
            f"The image downloaded from {host} is not a usable image ({len(data):,} bytes).",
            hint="The generation was billed; the image host may have failed.",
        ) from None


def _api_image(data: bytes, revised_prompt: str | None) -> ApiImage:
    try:
        fmt, width, height = inspect_image(data)
    except ResponseError:
        if not is_svg(data):
            raise
        # A billed SVG cometnb cannot read (not well-formed, entities, past the size it parses)
        # is still kept byte for byte; with no size known, nothing ever draws it.
        return ApiImage(data, "svg", 0, 0, revised_prompt)
    return ApiImage(data, fmt, width, height, revised_prompt)


class StreamReader:
    """Feeds SSE lines to the assembler and reports partial images as they arrive."""

    def __init__(
        self,
        host: str,
        on_partial: OnPartial | None,
        on_event: OnEvent | None,
        limits: ByteLimits = DEFAULT_LIMITS,
    ) -> None:
        self.decoder = CappedSSEDecoder(host, limits.sse_line_bytes)
        self.assembler = StreamAssembler(host)
        self.on_partial, self.on_event = on_partial, on_event

    @property
    def done(self) -> bool:
        """True once the stream said it is over."""
        return self.assembler.done

    def feed(self, line: str) -> bool:
        """Consume one line; True once the stream said it is over (``[DONE]``)."""
        event = self.decoder.feed(line)
        if event is not None:
            self._handle(event)
        return self.done

    def _handle(self, event: SSEEvent) -> None:
        partial = self.assembler.handle(event)
        if partial is None or (self.on_partial is None and self.on_event is None):
            return
        try:
            data = decode_b64_image(partial.b64_json)
        except ResponseError:
            return  # a broken preview is not worth failing the generation for
        notify(self.on_partial, partial.index, data)
        event_ = ClientEvent("partial", partial_index=partial.index, partial_image=data)
        notify(self.on_event, event_)

    def finish(self) -> ParsedResponse:
        """The parsed response once the stream has ended (the last event may be unterminated)."""
        last = self.decoder.flush()
        if last is not None and not self.done:
            self._handle(last)
        return self.assembler.result()
