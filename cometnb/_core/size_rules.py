"""Size limits beyond a model's closed list: gpt-image-2's pixel range and generic sanity limits.

gpt-image-2 takes any ``WxH`` with both sides multiples of 16, aspect ratio within 1:3..3:1,
long edge at most 3840 and a total of 655,360 to 8,294,400 pixels (API_FACTS.md §1, OpenAI's
cookbook). When a size breaks the pixel range the message names the range and the nearest size
that follows every rule, so the fix is one copy-paste away.

Unknown models pass through (CometAPI adds models often) but a size no image model can produce
(``99999x99999``) is refused before it is sent: :func:`generic_size_problem`.
"""

from __future__ import annotations

import math

__all__ = [
    "GENERIC_MAX_EDGE",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "generic_size_problem",
    "nearest_flexible_size",
    "pixel_problem",
]

MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400  # 3840x2160
STEP = 16
MAX_ASPECT = 3.0
MAX_EDGE = 3840
# No image model known to CometAPI produces more than 4096 px a side (seedream 4K presets,
# gpt-image-2 3840); 8192 leaves room for new models while refusing typos like 99999x99999.
GENERIC_MAX_EDGE = 8192


def _fits(width: int, height: int, rule: dict[str, float]) -> bool:
    long, short = max(width, height), min(width, height)
    step = int(rule["step"])
    return (
        width % step == 0
        and height % step == 0
        and short > 0
        and long <= rule["max_aspect"] * short
        and long <= rule["max_edge"]
        and rule["min_pixels"] <= width * height <= rule["max_pixels"]
    )


def nearest_flexible_size(
    width: int,
    height: int,
    *,
    step: int = STEP,
    max_aspect: float = MAX_ASPECT,
    max_edge: int = MAX_EDGE,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> str:
    """The ``WxH`` closest to ``width``x``height`` that gpt-image-2 accepts.

    Keeps the aspect ratio (clamped to 1:3..3:1), scales the area into the pixel range and
    rounds both sides to multiples of 16.

    Example::

        >>> nearest_flexible_size(512, 512), nearest_flexible_size(800, 600)
        ('816x816', '960x720')
    """
    rule = {
        "step": step,
        "max_aspect": max_aspect,
        "max_edge": max_edge,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
    }
    width, height = max(width, 1), max(height, 1)
    ratio = min(max(width / height, 1 / max_aspect), max_aspect)
    # The long edge stays within max_edge: w = sqrt(area * ratio), h = sqrt(area / ratio).
    edge_cap = max_edge * max_edge / ratio if ratio >= 1 else max_edge * max_edge * ratio
    area = min(max(width * height, min_pixels), max_pixels, edge_cap)
    ideal_h = math.sqrt(area / ratio)
    ideal_w = ideal_h * ratio
    best: tuple[float, int, int] | None = None
    base_w, base_h = int(ideal_w // step), int(ideal_h // step)
    for dw in range(-2, 3):
        for dh in range(-2, 3):
            w, h = (base_w + dw) * step, (base_h + dh) * step
            if w <= 0 or h <= 0 or not _fits(w, h, rule):
                continue
            score = abs(math.log((w / h) / ratio)) * 10 + abs(w * h - area) / area
            if best is None or score < best[0]:
                best = (score, w, h)
    return f"{best[1]}x{best[2]}" if best else "1024x1024"


def pixel_problem(
    width: int,
    height: int,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    nearest: str | None = None,
) -> str | None:
    """Why ``width``x``height`` is outside gpt-image-2's pixel range, or ``None``.

    Example::

        >>> pixel_problem(512, 512)
        'it has 262,144 pixels; allowed are 655,360 to 8,294,400 (nearest valid size: 816x816)'
    """
    pixels = width * height
    if min_pixels <= pixels <= max_pixels:
        return None
    nearest = nearest or nearest_flexible_size(width, height)
    return (
        f"it has {pixels:,} pixels; allowed are {min_pixels:,} to {max_pixels:,} "
        f"(nearest valid size: {nearest})"
    )


def generic_size_problem(width: int, height: int) -> str | None:
    """The sanity limit every model gets, known or not: each side at most 8,192 px.

    Example::

        >>> generic_size_problem(99999, 99999)
        'each side must be at most 8,192 px (no image model makes larger images); got 99999x99999'
    """
    if max(width, height) > GENERIC_MAX_EDGE:
        return (
            f"each side must be at most {GENERIC_MAX_EDGE:,} px (no image model makes larger "
            f"images); got {width}x{height}"
        )
    return None
