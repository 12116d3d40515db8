"""Wire shapes the simulator sends: result bodies, usage, SSE events, error and fault bodies.

Pure functions, no I/O. Every shape follows API_FACTS.md and the samples in the shared
fixtures (same keys), so a client that parses these parses the real service.
"""

from __future__ import annotations

import json
import secrets
import time
from email.utils import formatdate
from typing import Any

from cometnb._core.prices import builtin_table, image_tokens, prompt_tokens

__all__ = [
    "HTML",
    "JSON",
    "cdn_error",
    "comet_error",
    "error_body",
    "fault_body",
    "html_page",
    "moderation_error",
    "request_id",
    "retry_headers",
    "revised_prompt",
    "sse_event",
    "stream_error_event",
    "to_json",
    "usage",
]

JSON = "application/json"
HTML = "text/html; charset=utf-8"

# Output tokens of one 1024x1024 image by quality (OpenAI's published gpt-image-1 table).
_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160}
# OpenAI bills 100 extra output tokens per streamed partial image.
_PARTIAL_TOKENS = 100


def request_id() -> str:
    """A CometAPI-style request id: a timestamp then random hex."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(8)


def error_body(message: str, type_: str, param: str | None = None, code: Any = None) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``, the OpenAI error shape."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def comet_error(message: str, code: str = "") -> bytes:
    """CometAPI's own errors: ``type: comet_api_error``, message ending "(request id: …)"."""
    return error_body(f"{message} (request id: {request_id()})", "comet_api_error", "", code)


def moderation_error(family: str) -> bytes:
    """A content-policy refusal (HTTP 400) in the shape the model family uses."""
    if family == "dall-e":
        return error_body(
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            "invalid_request_error",
            None,
            "content_policy_violation",
        )
    return error_body(
        "Your request was rejected by the safety system. If you believe this is an error, "
        "contact us.",
        "image_generation_user_error",
        None,
        "moderation_blocked",
    )


def usage(
    prompt: str,
    width: int,
    height: int,
    quality: str,
    n: int,
    partials: int = 0,
    *,
    model: str = "",
    extra_tokens: int = 0,
) -> dict[str, Any]:
    """The token counts the real service reports (API_FACTS §8): the gpt-image-2 formula or
    the gpt-image-1/1.5 table for the model, per image, plus the per-partial surcharge when
    streaming; text tokens as cometnb estimates them. So for these models the estimate made
    before sending equals the actual cost. Other models: the gpt-image-1 table scaled by area.
    ``extra_tokens`` is added to each image (a service billing above the formula)."""
    table = builtin_table()
    text = prompt_tokens(prompt, table)
    known = image_tokens(model, f"{width}x{height}", quality, table) if model else None
    if known is None:
        base = _TOKENS_1024.get(quality, _TOKENS_1024["medium"])
        known = round(base * width * height / 1024**2)
    image = (known + extra_tokens + _PARTIAL_TOKENS * partials) * n
    return {
        "input_tokens": text,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": text},
        "output_tokens": image,
        "total_tokens": text + image,
        "output_tokens_details": {"image_tokens": image, "text_tokens": 0},
    }


def revised_prompt(prompt: str, style: str | None) -> str:
    """dall-e-3 rewrites prompts; the simulator does it deterministically."""
    mood = "soft, natural light" if style == "natural" else "vivid, dramatic colour"
    return f"{prompt.strip().rstrip('.')}, rendered in rich detail with {mood}."


def sse_event(event: str, payload: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``event:`` line, ``data:`` line, blank line (as in stream.txt)."""
    data = payload.encode() if isinstance(payload, str) else to_json(payload)
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def to_json(value: Any) -> bytes:
    """``json.dumps(value).encode()``, with every ``b64_json`` string spliced in unescaped.

    Base64 never needs JSON escaping, and re-scanning megabytes of it costs the simulator
    ~20 ms per image; splicing costs ~0.5 ms, keeping the benchmarks about the client.
    """
    marker = secrets.token_hex(8)
    blobs: list[bytes] = []

    def stash(node: Any) -> Any:
        if isinstance(node, list):
            return [stash(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: stash(v) for k, v in node.items()}
        if isinstance(out.get("b64_json"), str):
            blobs.append(out["b64_json"].encode("ascii"))
            out["b64_json"] = marker
        return out

    parts = json.dumps(stash(value)).encode().split(f'"{marker}"'.encode())
    pieces = [parts[0]]
    for blob, part in zip(blobs, parts[1:], strict=True):
        pieces += [b'"', blob, b'"', part]
    return b"".join(pieces)


_HTML_PAGES = {
    404: ("404 Not Found", "<center><h1>404 Not Found</h1></center><hr><center>nginx</center>"),
    502: ("502 Bad Gateway", "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"),
    504: (
        "504 Gateway Time-out",
        "<center><h1>504 Gateway Time-out</h1></center><hr><center>nginx</center>",
    ),
    524: (
        "api.cometapi.com | 524: A timeout occurred",
        "<h1>A timeout occurred</h1><p>Error code 524</p><p>The origin web server timed out "
        "responding to this request.</p><p>Cloudflare</p>",
    ),
}


def html_page(status: int) -> bytes:
    """The HTML a gateway or web server sends instead of JSON for ``status``."""
    title, body = _HTML_PAGES.get(status, (f"{status} Error", f"<h1>{status} Error</h1>"))
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>\n".encode()


def cdn_error(code: str, message: str) -> bytes:
    """An object-store (CDN) error page, as an expired or unknown file URL gets."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    ).encode()


# --- faults ------------------------------------------------------------------------------


def retry_headers(kind: str, params: dict[str, Any]) -> dict[str, str]:
    """The ``Retry-After`` header a status fault sends (seconds, or an HTTP date), if any."""
    if params.get("no_retry_after") or params.get("quota"):
        return {}
    seconds = params.get("retry_after", 1 if kind == "429" else None)
    if seconds is None:
        return {}
    if params.get("retry_after_date"):
        return {"Retry-After": formatdate(time.time() + float(seconds), usegmt=True)}
    return {"Retry-After": str(seconds)}


def fault_body(kind: str, params: dict[str, Any]) -> tuple[int, bytes, str]:
    """Status, body and content type of a status fault, shaped as the real gateway sends it."""
    html = params.get("html")
    if kind == "429" and params.get("quota"):
        message = "You exceeded your current quota: the account balance is exhausted"
        return 429, comet_error(message, "insufficient_quota"), JSON
    if kind == "429":
        return (
            429,
            comet_error("Rate limit reached, please retry later", "rate_limit_exceeded"),
            JSON,
        )
    if kind == "500":
        return 500, comet_error("Internal server error"), JSON
    if kind == "500_invalid":
        return (
            500,
            comet_error("Invalid request: upstream rejected a parameter", "invalid_request"),
            JSON,
        )
    if kind == "503":
        return 503, comet_error("The upstream service is overloaded, try again later"), JSON
    if kind == "html_404":
        return 404, html_page(404), HTML
    status = int(kind)  # 502, 504, 524
    if status == 524 and not html:
        body = error_body("Gateway timeout.", "cf_gateway_timeout", None, 524)
        return 524, body, JSON
    if html is False:
        return status, comet_error(f"Upstream gateway error {status}"), JSON
    return status, html_page(status), HTML


def stream_error_event() -> bytes:
    """The SSE ``error`` event a stream ends with when generation fails upstream."""
    error = {
        "message": "Image generation failed upstream (simulated).",
        "type": "server_error",
        "param": None,
        "code": "image_generation_failed",
    }
    return sse_event("error", {"type": "error", "error": error})
