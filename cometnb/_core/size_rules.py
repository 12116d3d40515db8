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


def _fits(width: int, height: int) -> bool:
    long, short = max(width, height), min(width, height)
    return (
        width % STEP == 0
        and height % STEP == 0
        and short > 0
        and long <= MAX_ASPECT * short
        and long <= MAX_EDGE
        and MIN_PIXELS <= width * height <= MAX_PIXELS
    )


def nearest_flexible_size(width: int, height: int) -> str:
    """The ``WxH`` closest to ``width``x``height`` that gpt-image-2 accepts.

    Keeps the aspect ratio (clamped to 1:3..3:1), scales the area into the pixel range and
    rounds both sides to multiples of 16.

    Example::

        >>> nearest_flexible_size(512, 512), nearest_flexible_size(800, 600)
        ('816x816', '960x720')
    """
    width, height = max(width, 1), max(height, 1)
    ratio = min(max(width / height, 1 / MAX_ASPECT), MAX_ASPECT)
    area = min(max(width * height, MIN_PIXELS), MAX_PIXELS)
    ideal_h = math.sqrt(area / ratio)
    ideal_w = ideal_h * ratio
    best: tuple[float, int, int] | None = None
    base_w, base_h = int(ideal_w // STEP), int(ideal_h // STEP)
    for dw in range(-1, 3):
        for dh in range(-1, 3):
            w, h = (base_w + dw) * STEP, (base_h + dh) * STEP
            if w <= 0 or h <= 0 or not _fits(w, h):
                continue
            score = abs(math.log((w / h) / ratio)) * 10 + abs(w * h - area) / area
            if best is None or score < best[0]:
                best = (score, w, h)
    return f"{best[1]}x{best[2]}" if best else "1024x1024"


def pixel_problem(width: int, height: int) -> str | None:
    """Why ``width``x``height`` is outside gpt-image-2's pixel range, or ``None``.

    Example::

        >>> pixel_problem(512, 512)
        'it has 262,144 pixels; allowed are 655,360 to 8,294,400 (nearest valid size: 816x816)'
    """
    pixels = width * height
    if MIN_PIXELS <= pixels <= MAX_PIXELS:
        return None
    return (
        f"it has {pixels:,} pixels; allowed are {MIN_PIXELS:,} to {MAX_PIXELS:,} "
        f"(nearest valid size: {nearest_flexible_size(width, height)})"
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
