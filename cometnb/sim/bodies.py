"""Wire shapes the simulator sends: result bodies, usage, SSE events, error and fault bodies.

Pure functions, no I/O. Every shape follows API_FACTS.md and the samples in the shared
fixtures (same keys), so a client that parses these parses the real service.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from cometnb._core.prices import builtin_table, image_tokens, prompt_tokens

__all__ = [
    "JSON",
    "cdn_error",
    "comet_error",
    "error_body",
    "moderation_error",
    "request_id",
    "revised_prompt",
    "sse_event",
    "to_json",
    "usage",
]

JSON = "application/json"

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


def cdn_error(code: str, message: str) -> bytes:
    """An object-store (CDN) error page, as an expired or unknown file URL gets."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    ).encode()
