"""Synthetic images for the offline simulator: drawn from the prompt, stamped SIMULATED, cached.

The pictures must be cheap (benchmarks measure the client, not the simulator), look different
for different prompts (so a grid of results is readable), and never pass for real output.
``svg`` is a small drawing as SVG text (``hostile``: one that also carries a ``<script>``, an
``onload`` handler and a reference to a local file, as an SVG from anywhere may); ``gif`` is an
animation of ``frames`` frames of ``frame_ms`` each, the disc moving across.
:class:`ImageCache` keeps rendered bytes and their base64 by :class:`ImageSpec`, so a repeated
request costs only the transfer.
"""

from __future__ import annotations

import base64
import colorsys
import functools
import hashlib
import io
import textwrap
import threading
from collections import OrderedDict
from dataclasses import dataclass
from html import escape

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from cometnb._core.images import mime_type

__all__ = ["ImageCache", "ImageSpec", "Rendered", "render", "shared_cache"]


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides the bytes of one synthetic image (the cache key).

    ``variant`` tells the images of one ``n>1`` request apart; ``preview`` > 0 makes a blurry
    partial (streaming) image, larger is blurrier.

    Example::

        >>> ImageSpec("a red fox", 256, 256).fmt
        'png'
    """

    prompt: str
    width: int
    height: int
    fmt: str = "png"
    transparent: bool = False
    texture: str = "smooth"
    variant: int = 0
    compression: int | None = None
    preview: int = 0
    frames: int = 9  # a GIF's frame_count
    frame_ms: int = 200  # and frame_duration_ms
    hostile: bool = False  # an SVG carrying a script, an event handler and a file reference

    @property
    def mime(self) -> str:
        return mime_type(self.fmt)


@dataclass(frozen=True)
class Rendered:
    """Encoded image bytes and their base64 text (computed once, served many times)."""

    data: bytes
    b64: str
    mime: str


def render(spec: ImageSpec) -> bytes:
    """Draw and encode the image ``spec`` describes."""
    if spec.fmt == "svg":
        return _svg(spec)
    if spec.fmt == "gif":
        return _gif(spec)
    image = _draw(spec)
    if spec.preview:
        image = _blur(image, spec.preview)
    return _encode(image, spec)


def _palette(spec: ImageSpec) -> tuple[tuple[int, int, int], ...]:
    """Three colours from a hash of the prompt: same prompt, same picture."""
    digest = hashlib.sha256(f"{spec.variant}:{spec.prompt}".encode()).digest()
    colours = []
    for i in range(3):
        hue = digest[i] / 255
        sat = 0.45 + digest[i + 3] / 255 * 0.5
        val = 0.35 + digest[i + 6] / 255 * 0.6
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return tuple(colours)


def _draw(spec: ImageSpec) -> Image.Image:
    size = (spec.width, spec.height)
    start, end, accent = _palette(spec)
    angle = hashlib.sha256(spec.prompt.encode()).digest()[9] % 4
    gradient = Image.linear_gradient("L").rotate(90 * angle).resize(size)
    image = ImageOps.colorize(gradient, start, end).convert("RGB")
    short = min(size)
    _draw_disc(ImageDraw.Draw(image), spec, accent, short)
    if spec.texture == "photo":
        image = _add_noise(image)
    draw = ImageDraw.Draw(image)
    _draw_prompt(draw, spec, short)
    _draw_stamp(draw, spec, short)
    if spec.transparent:
        image.putalpha(_subject_mask(size))
    return image


def _svg(spec: ImageSpec) -> bytes:
    """The picture as SVG: a gradient, the disc, the prompt and the SIMULATED plate."""
    (r1, g1, b1), (r2, g2, b2), (r3, g3, b3) = _palette(spec)
    w, h, short = spec.width, spec.height, min(spec.width, spec.height)
    prompt = escape(textwrap.shorten(spec.prompt, 60, placeholder="…"))
    hostile = (
        '<script>document.title="svg script ran"</script>'
        '<image href="/etc/cometnb-sim-local-file.png" x="0" y="0" width="64" height="64"/>'
        if spec.hostile
        else ""
    )
    onload = ' onload="document.title=&quot;svg onload ran&quot;"' if spec.hostile else ""
    text = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}"{onload}>'
        f'<defs><linearGradient id="g" x2="1" y2="1">'
        f'<stop offset="0" stop-color="rgb({r1},{g1},{b1})"/>'
        f'<stop offset="1" stop-color="rgb({r2},{g2},{b2})"/></linearGradient></defs>'
        f'<rect width="{w}" height="{h}" fill="url(#g)"/>'
        f'<circle cx="{w // 3}" cy="{h // 2}" r="{short // 5}" fill="rgb({r3},{g3},{b3})"/>'
        f'<text x="{short // 16}" y="{short // 8}" font-family="sans-serif" '
        f'font-size="{max(10, short // 22)}" fill="#fff">{prompt}</text>'
        f'<rect x="{w // 2 - short // 4}" y="{h - short // 5}" width="{short // 2}" '
        f'height="{short // 10}" fill="#c80000"/>'
        f'<text x="{w // 2}" y="{h - short // 5 + short // 14}" text-anchor="middle" '
        f'font-family="sans-serif" font-size="{short // 16}" fill="#fff">SIMULATED</text>'
        f"{hostile}</svg>\n"
    )
    return text.encode("utf-8")


# The API shares one pixel budget among a GIF's frames (API_FACTS §10).
_GIF_PIXELS = 8_294_400


def _gif(spec: ImageSpec) -> bytes:
    """``frames`` frames, each ``frame_ms`` long, with the disc moving across; the frames are
    scaled down so all of them fit the API's shared pixel budget."""
    scale = min(1.0, (_GIF_PIXELS / (spec.frames * spec.width * spec.height)) ** 0.5)
    # Edges stay multiples of 16, as the gateways measured: 960 px for 9 frames, 816 for 12.
    size = (
        max(16, int(spec.width * scale) // 16 * 16),
        max(16, int(spec.height * scale) // 16 * 16),
    )
    base = _draw(ImageSpec(spec.prompt, size[0], size[1], variant=spec.variant))
    colour = _palette(spec)[2]
    frames = []
    for index in range(spec.frames):
        frame = base.copy()
        x = size[0] * (index + 1) // (spec.frames + 1)
        radius = min(size) // 10
        ImageDraw.Draw(frame).ellipse(
            (x - radius, size[1] // 2 - radius, x + radius, size[1] // 2 + radius),
            fill=colour,
            outline=(255, 255, 255),
            width=max(1, radius // 8),
        )
        frames.append(frame.quantize(64, method=Image.Quantize.MEDIANCUT))
    out = io.BytesIO()
    frames[0].save(
        out, "GIF", save_all=True, append_images=frames[1:], duration=spec.frame_ms, loop=0
    )
    return out.getvalue()


def _add_noise(image: Image.Image) -> Image.Image:
    # Per-channel Gaussian noise defeats PNG compression the way a real photo does:
    # a 1024x1024 PNG comes out near 3 MB, which is what the benchmarks need to move.
    noise = Image.merge("RGB", [Image.effect_noise(image.size, 80) for _ in range(3)])
    return Image.blend(image, noise, 0.6)


def _draw_disc(
    draw: ImageDraw.ImageDraw, spec: ImageSpec, colour: tuple[int, ...], short: int
) -> None:
    digest = hashlib.sha256(f"disc:{spec.variant}:{spec.prompt}".encode()).digest()
    radius = short // 5 + digest[0] % max(1, short // 8)
    cx = spec.width // 4 + digest[1] * spec.width // 512
    cy = spec.height // 4 + digest[2] * spec.height // 512
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, px))


def _draw_prompt(draw: ImageDraw.ImageDraw, spec: ImageSpec, short: int) -> None:
    px = max(10, short // 22)
    chars = max(10, int((spec.width - short // 4) / (px * 0.55)))
    lines = textwrap.wrap(spec.prompt, chars)[:6] or [" "]
    text = "\n".join(lines)
    margin = short // 8  # inside the rounded cut-out of a transparent image
    font = _font(px)
    box = draw.multiline_textbbox((margin, margin), text, font=font)
    pad = px // 3
    draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=(0, 0, 0))
    draw.multiline_text((margin, margin), text, font=font, fill=(255, 255, 255))


def _draw_stamp(draw: ImageDraw.ImageDraw, spec: ImageSpec, short: int) -> None:
    px = max(10, short // 12)
    font = _font(px)
    label = "SIMULATED"
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    x = (spec.width - (right - left)) // 2 - left
    y = spec.height - bottom - short // 8
    pad = px // 4
    plate = (x + left - pad, y + top - pad, x + right + pad, y + bottom + pad)
    draw.rectangle(plate, fill=(200, 0, 0))
    draw.text((x, y), label, font=font, fill=(255, 255, 255))


def _subject_mask(size: tuple[int, int]) -> Image.Image:
    """Opaque rounded "subject", fully transparent corners: real alpha, as a cut-out has."""
    mask = Image.new("L", size, 0)
    inset = min(size) // 16
    radius = min(size) // 6
    box = (inset, inset, size[0] - inset, size[1] - inset)
    ImageDraw.Draw(mask).rounded_rectangle(box, radius=radius, fill=255)
    return mask


def _blur(image: Image.Image, level: int) -> Image.Image:
    """A low-detail preview: downscale by 2**(level+1), scale back up, soften."""
    factor = 2 ** min(level + 1, 6)
    small = (max(1, image.width // factor), max(1, image.height // factor))
    coarse = image.resize(small, Image.Resampling.BOX).resize(image.size, Image.Resampling.BILINEAR)
    return coarse.filter(ImageFilter.GaussianBlur(radius=level + 1))


def _encode(image: Image.Image, spec: ImageSpec) -> bytes:
    out = io.BytesIO()
    if spec.fmt == "jpeg":
        image = image.convert("RGB")  # JPEG has no alpha channel
        quality = min(95, spec.compression if spec.compression is not None else 90)
        image.save(out, "JPEG", quality=max(1, quality))
    elif spec.fmt == "webp":
        quality = spec.compression if spec.compression is not None else 90
        image.save(out, "WEBP", quality=quality, method=0)
    else:
        # Level 1: a quarter of the time of the default for about the same size on noise.
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


class ImageCache:
    """A thread-safe LRU of rendered images, bounded by total bytes.

    Rendering happens outside the lock, so parallel requests never wait on each other
    (two threads may render the same spec once each; the result is identical).

    Example::

        >>> cache = ImageCache(max_bytes=10_000_000)
        >>> first = cache.get(ImageSpec("a cat", 64, 64))
        >>> cache.get(ImageSpec("a cat", 64, 64)) is first
        True
    """

    def __init__(self, max_bytes: int = 256_000_000) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[ImageSpec, Rendered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, spec: ImageSpec) -> Rendered:
        """The rendered image for ``spec``, drawing it on a miss."""
        with self._lock:
            found = self._items.get(spec)
            if found is not None:
                self._items.move_to_end(spec)
                self.hits += 1
                return found
            self.misses += 1
        data = render(spec)
        item = Rendered(data, base64.b64encode(data).decode("ascii"), spec.mime)
        self._keep(spec, item)
        return item

    def _keep(self, spec: ImageSpec, item: Rendered) -> None:
        cost = len(item.data) + len(item.b64)
        with self._lock:
            if spec in self._items:
                return
            self._items[spec] = item
            self._bytes += cost
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.data) + len(old.b64)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@functools.cache
def shared_cache() -> ImageCache:
    """One cache for every simulator in the process: images depend only on their spec, so
    the many short-lived servers of a test run (and a benchmark's) render each image once."""
    return ImageCache()
