"""How much a reply may cost in memory and time: :class:`ByteLimits`.

The largest image the API makes is 3840×2160; as an RGBA PNG of noise (the worst case) that is
about 32 MB, and about 42 MB once base64-encoded into JSON. Every cap is derived from that one
figure (``image_mb``), so a legitimate answer always fits and a hostile one (a gzip bomb, an
endless download, a line that never ends) is cut off after a bounded amount:

* a JSON result body: ``n`` base64 images plus 1 MB of JSON around them;
* an SSE line or event: one base64 image (plus 64 KB);
* an image download: one image; an error body: ``error_body_mb``;
* decoded images: at most ``max_pixels`` (Pillow's own bomb check allows 178 million);
* one attempt, from sending to the last byte: ``deadline_s``; one download: ``download_s``.
  (httpx's timeout is per read: a reply dripping a byte a second never trips it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "MB", "ByteLimits"]

MB = 1 << 20
_MAX_W, _MAX_H = 3840, 2160
# An RGBA PNG that does not compress at all: 4 bytes a pixel, a filter byte a row, framing.
_LARGEST_PNG = _MAX_W * _MAX_H * 4 + _MAX_H + 64 * 1024
_SLACK = 64 * 1024


def _b64(size: int) -> int:
    return 4 * math.ceil(size / 3)


@dataclass(frozen=True)
class ByteLimits:
    """Caps on what one reply may make the client hold or wait for (see the module doc).

    Example::

        >>> ByteLimits().download_bytes // MB
        31
        >>> ByteLimits(image_mb=1).json_body_bytes(2) // MB
        3
    """

    image_mb: float = _LARGEST_PNG / MB
    error_body_mb: float = 1.0
    max_pixels: int = 4 * _MAX_W * _MAX_H
    deadline_s: float = 1800.0
    download_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("image_mb", "error_body_mb", "deadline_s", "download_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ByteLimits.{name} must be a positive number; got {value!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(
                f"ByteLimits.max_pixels must be a positive int; got {self.max_pixels!r}"
            )

    @property
    def download_bytes(self) -> int:
        """One downloaded image."""
        return math.ceil(self.image_mb * MB)

    @property
    def sse_line_bytes(self) -> int:
        """One SSE line, and one event (a base64 image and its JSON)."""
        return _b64(self.download_bytes) + _SLACK

    def json_body_bytes(self, n: int | None) -> int:
        """A JSON result holding ``n`` base64 images."""
        return max(1, n or 1) * self.sse_line_bytes + MB

    @property
    def error_body_bytes(self) -> int:
        return math.ceil(self.error_body_mb * MB)


DEFAULT_LIMITS = ByteLimits()
