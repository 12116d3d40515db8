"""Builders shared by the history, store, export and render tests: real image bytes and
``ApiResult`` objects made directly (no client or network needed)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from cometnb._core.generations import ApiImage, ApiResult


def image_bytes(
    width: int = 64, height: int = 64, fmt: str = "PNG", color: tuple[int, ...] = (200, 40, 40)
) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, fmt)
    return out.getvalue()


def noisy_png(side: int = 1024) -> bytes:
    """A photo-like (incompressible) PNG: what a real 1024² result weighs (~3 MB)."""
    import os

    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def api_result(
    *images: bytes,
    revised: str | None = None,
    usage: dict[str, Any] | None = None,
    synthetic: bool = False,
    **meta: Any,
) -> ApiResult:
    if not images:
        images = (image_bytes(),)
    items = []
    for data in images:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "png").lower()
            width, height = img.size
        items.append(ApiImage(data, fmt, width, height, revised))
    return ApiResult(
        items,
        created=1_795_000_000,
        usage=usage if usage is not None else {"input_tokens": 16, "total_tokens": 224},
        meta=meta,
        synthetic=synthetic,
    )


def body(prompt: str = "a red fox in snow", model: str = "gpt-image-2", **fields: Any) -> dict:
    return {"model": model, "prompt": prompt, **fields}
