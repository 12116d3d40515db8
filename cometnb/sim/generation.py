"""The generation job: what the simulator answers to a valid request, and the wire shapes it uses.

:func:`parse_job` turns a checked body into a :class:`SimJob`; :func:`json_result` and
:func:`stream_events` turn it into its JSON body or its SSE events, including the content
faults (corrupt base64, non-image bytes, truncated JSON). The wire shapes (result bodies,
usage, SSE events, error bodies) are pure functions here too and follow API_FACTS.md and the
samples in the shared fixtures (same keys), so a client that parses these parses the real
service. Usage follows the real token counts (``_core.prices``), so estimate and actual agree.
The server (``sim.server``) does the I/O and the timing.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from cometnb._core.prices import builtin_table, image_tokens, prompt_tokens
from cometnb.sim.edits import EditInputs, input_tokens, render_edit
from cometnb.sim.images import ImageCache, ImageSpec, Rendered
from cometnb.sim.signing import SimSigner

__all__ = [
    "JSON",
    "NON_IMAGE",
    "SimJob",
    "cdn_error",
    "comet_error",
    "corrupt_b64",
    "error_body",
    "json_result",
    "moderation_error",
    "parse_job",
    "request_id",
    "revised_prompt",
    "sse_event",
    "stream_events",
    "to_json",
    "usage",
]

JSON = "application/json"

# Output tokens of one 1024x1024 image by quality (OpenAI's published gpt-image-1 table).
_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160}
# OpenAI bills 100 extra output tokens per streamed partial image.
_PARTIAL_TOKENS = 100


class SimState(Protocol):
    """What a job reads of ``sim.state.SimState`` (a protocol: the state imports the faults,
    which build their bodies here, so importing the state back would close a cycle)."""

    cache: ImageCache
    extra_output_tokens: int
    signer: SimSigner | None
    texture: str
    svg: str

    def host_file(self, data: bytes, mime: str, ext: str, *, expired: bool = False) -> str: ...


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


_MAX_EDGE = 4096
_MAX_PIXELS = 8_294_400  # 3840x2160, the largest gpt-image-2 size
_DEFAULT_SIZE = (1024, 1024)  # what "auto" and a missing size become
_PRESETS = {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)}  # seedream
NON_IMAGE = b"SIMULATED: these bytes are deliberately not an image.\n" * 8


@dataclass(frozen=True)
class SimJob:
    """A validated request, resolved to concrete values (defaults filled in).

    Example::

        >>> parse_job({"prompt": "a cat", "model": "gpt-image-1"}, "gpt-image").size
        '1024x1024'
    """

    prompt: str
    model: str
    family: str
    n: int
    width: int
    height: int
    fmt: str
    transparent: bool
    quality: str
    compression: int | None
    response_format: str
    style: str | None
    stream: bool
    partials: int
    inputs: EditInputs | None = None  # an edit (or seedream references): results derive from them
    fidelity: str | None = None
    frames: int = 9  # frame_count of a GIF (API_FACTS §10 defaults)
    frame_ms: int = 200  # frame_duration_ms of a GIF

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def background(self) -> str:
        return "transparent" if self.transparent else "opaque"

    def spec(self, variant: int, texture: str, preview: int = 0, svg: str = "clean") -> ImageSpec:
        return ImageSpec(
            self.prompt,
            self.width,
            self.height,
            self.fmt,
            self.transparent,
            texture,
            variant,
            self.compression,
            preview,
            frames=self.frames,
            frame_ms=self.frame_ms,
            hostile=svg == "hostile",
        )

    def meta(self) -> dict[str, Any]:
        """The top-level fields a GPT image response repeats (and every stream event)."""
        return {
            "background": self.background,
            "output_format": self.fmt,
            "quality": self.quality,
            "size": self.size,
        }


def _dimensions(size: Any) -> tuple[int, int]:
    if size in (None, "auto"):
        return _DEFAULT_SIZE
    if size in _PRESETS:
        return _PRESETS[size]
    width, height = (int(side) for side in str(size).split("x"))
    if not (16 <= width <= _MAX_EDGE and 16 <= height <= _MAX_EDGE):
        raise ValueError(f"Invalid size {size}: each side must be between 16 and {_MAX_EDGE}.")
    if width * height > _MAX_PIXELS:
        raise ValueError(f"Invalid size {size}: at most {_MAX_PIXELS} pixels are supported.")
    return width, height


def parse_job(body: dict[str, Any], family: str, inputs: EditInputs | None = None) -> SimJob:
    """The job a validated request body asks for; ``ValueError`` when its size cannot be drawn."""
    width, height = _dimensions(body.get("size"))
    response_format = body.get("response_format") or "url"
    if family == "seedream":
        fmt, quality = "jpeg", "auto"  # seedream's signed URLs point at .jpeg files
    elif family == "dall-e":
        # CometAPI's dall-e-3 URLs point at .webp files; b64 results are PNG.
        is_url_webp = response_format == "url" and str(body["model"]).startswith("dall-e-3")
        fmt = "webp" if is_url_webp else "png"
        quality = str(body.get("quality") or "standard")
    else:
        response_format = "b64_json"
        fmt = str(body.get("output_format") or "png")
        drawn = (
            ("png", "jpeg", "webp") if inputs is not None else ("png", "jpeg", "webp", "svg", "gif")
        )
        fmt = fmt if fmt in drawn else "png"  # an edit's result is a raster
        quality = str(body.get("quality") or "auto")
        quality = "medium" if quality == "auto" else quality
    return SimJob(
        prompt=str(body["prompt"]),
        model=str(body["model"]),
        family=family,
        n=int(body.get("n") or 1),
        width=width,
        height=height,
        fmt=fmt if fmt in ("png", "jpeg", "webp", "svg", "gif") else "png",
        transparent=family != "dall-e"
        and body.get("background") == "transparent"
        and fmt != "jpeg",
        quality=quality,
        compression=body.get("output_compression"),
        response_format=str(response_format),
        style=body.get("style"),
        stream=bool(body.get("stream")) and family == "gpt-image",
        partials=int(body.get("partial_images") or 0),
        inputs=inputs,
        fidelity=body.get("input_fidelity"),
        frames=int(body.get("frame_count") or 9),
        frame_ms=int(body.get("frame_duration_ms") or 200),
    )


def corrupt_b64(text: str) -> str:
    """Base64 that no decoder accepts: one character past a multiple of four, plus junk."""
    keep = (len(text) // 2) // 4 * 4 + 1
    return text[:keep] + "!*"


def _b64(image: Rendered, fault: str | None) -> str:
    if fault == "corrupt_b64":
        return corrupt_b64(image.b64)
    if fault == "non_image":
        return base64.b64encode(NON_IMAGE).decode("ascii")
    return image.b64


def _images(job: SimJob, state: SimState) -> list[Rendered]:
    return [_render(job, state, i) for i in range(job.n)]


def _render(job: SimJob, state: SimState, variant: int, preview: int = 0) -> Rendered:
    """One image of ``job``: drawn from the prompt (cached), or derived from its inputs;
    a final image is signed with Content Credentials when the simulator signs."""
    if job.inputs is None:
        drawn = state.cache.get(job.spec(variant, state.texture, preview, state.svg))
        if state.signer is None or preview:
            return drawn
        data, mime = drawn.data, drawn.mime
    else:
        size = (job.width, job.height)
        data = render_edit(
            job.inputs, job.prompt, size, job.fmt, variant=variant, preview=preview,
            compression=job.compression,
        )  # fmt: skip
        mime = {"jpeg": "image/jpeg", "webp": "image/webp"}.get(job.fmt, "image/png")
    if state.signer is not None and not preview:
        data = state.signer.sign(data, mime, job.prompt[:200])
    return Rendered(data, base64.b64encode(data).decode("ascii"), mime)


def _usage(job: SimJob, state: SimState, n: int, partials: int = 0) -> dict[str, Any]:
    found = usage(
        job.prompt,
        job.width,
        job.height,
        job.quality,
        n,
        partials,
        model=job.model,
        extra_tokens=state.extra_output_tokens,
    )
    if job.inputs is not None:  # each input image costs image tokens (API_FACTS §8)
        extra = input_tokens(job.inputs, job.fidelity)
        found["input_tokens"] += extra
        found["input_tokens_details"]["image_tokens"] = extra
        found["total_tokens"] += extra
    return found


def json_result(job: SimJob, state: SimState, fault: str | None) -> dict[str, Any]:
    """The complete (non-streamed) response body for ``job``."""
    created = int(time.time())
    if job.family == "gpt-image":
        return {
            "created": created,
            **job.meta(),
            "usage": _usage(job, state, job.n),
            "data": [{"b64_json": _b64(img, fault)} for img in _images(job, state)],
        }
    if job.family == "seedream":
        return _seedream_result(job, state, fault, created)
    if job.family == "dall-e":
        return {
            "created": created,
            "data": [_dalle_item(job, img, state, fault) for img in _images(job, state)],
        }
    return {
        "created": created,
        "data": [{"b64_json": _b64(img, fault)} for img in _images(job, state)],
    }


def _seedream_result(
    job: SimJob, state: SimState, fault: str | None, created: int
) -> dict[str, Any]:
    """As in seedream-url.json: URL (or b64) items with their size, and seedream's usage."""
    items = []
    for img in _images(job, state):
        item: dict[str, Any] = {"size": job.size}
        if job.response_format == "b64_json":
            item["b64_json"] = _b64(img, fault)
        else:
            data = NON_IMAGE if fault == "non_image" else img.data
            item["url"] = state.host_file(data, img.mime, job.fmt, expired=fault == "expired_url")
        items.append(item)
    tokens = job.n * job.width * job.height // 256
    return {
        "model": job.model,
        "created": created,
        "data": items,
        "usage": {"generated_images": job.n, "output_tokens": tokens, "total_tokens": tokens},
    }


def _dalle_item(job: SimJob, image: Rendered, state: SimState, fault: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if job.model.startswith("dall-e-3"):
        item["revised_prompt"] = revised_prompt(job.prompt, job.style)
    if job.response_format == "b64_json":
        item["b64_json"] = _b64(image, fault)
        return item
    data = NON_IMAGE if fault == "non_image" else image.data
    item["url"] = state.host_file(data, image.mime, job.fmt, expired=fault == "expired_url")
    return item


def stream_events(job: SimJob, state: SimState, fault: str | None) -> Iterator[bytes]:
    """The SSE events of a streamed GPT image request, rendered lazily (one at a time)."""
    kind = "image_edit" if job.inputs is not None else "image_generation"
    for variant in range(job.n):
        for index in range(job.partials):
            # Earlier partials are blurrier; the last one is close to the final image.
            preview = _render(job, state, variant, job.partials - index)
            yield sse_event(
                f"{kind}.partial_image",
                {
                    "type": f"{kind}.partial_image",
                    "b64_json": preview.b64,
                    "partial_image_index": index,
                    "created_at": int(time.time()),
                    **job.meta(),
                },
            )
        final = _render(job, state, variant)
        completed = {
            "type": f"{kind}.completed",
            "b64_json": _b64(final, fault),
            "created_at": int(time.time()),
            **job.meta(),
            "usage": _usage(job, state, 1, job.partials),
        }
        yield sse_event(f"{kind}.completed", _maybe_truncated(completed, fault))


def _maybe_truncated(payload: dict[str, Any], fault: str | None) -> dict[str, Any] | str:
    if fault != "truncated_json":
        return payload
    text = json.dumps(payload)
    return text[: len(text) // 2]
