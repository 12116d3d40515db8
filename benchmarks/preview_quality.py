"""9. Preview quality: which WebP quality matches today's JPEG 80 previews, at fewer bytes.

For the simulator's photo-like 1024² images (three renders, averaged), each preview size the
views embed (512 px cards, 256 px grid cells) is encoded as JPEG quality 80 (the previous
previews) and as WebP at qualities 30–90, and compared with the downscaled pixels by PSNR. The
chosen WebP quality is the lowest whose PSNR is at least JPEG 80's (within 0.05 dB, the
measurement's noise between runs): no visible loss against today's previews, fewest bytes.
The table in ``cometnb/_core/images.py`` (``_WEBP_QUALITY``) should say the same.

So that the choice is also looked at, not only measured, the run writes
``benchmarks/previews-side-by-side.png``: for each preview size, the same part of the first
render as the downscaled pixels, the JPEG 80 preview and the chosen WebP preview, enlarged
without smoothing so that every codec artefact shows.
"""

from __future__ import annotations

import io
import math
from typing import Any

from ._harness import BENCH_KEY, PHOTO_MODEL, PHOTO_SIZE, ROOT, Result, need, simulator

TITLE = "Preview quality (WebP against today's JPEG 80, photo-like 1024² image)"
SIZES = (512, 256)
QUALITIES = tuple(range(30, 95, 5))
NOISE_DB = 0.05
# Several renders, averaged: one image alone puts neighbouring qualities within noise.
PROMPTS = ("a harbour at dawn", "a forest path in autumn", "a street market at night")
SHEET = ROOT / "benchmarks" / "previews-side-by-side.png"
# The part of the render shown (fractions of the side: the prompt label and the disc's edge,
# where artefacts show first), and its width on the sheet: 2x the 512 px preview's pixels,
# 4x the 256 px one's, enlarged without smoothing.
CROP_BOX, TILE = (0.08, 0.10, 0.40, 0.42), 328


def run() -> Result:
    previews = need("cometnb._core.images")
    from PIL import Image

    result = Result(TITLE)
    originals = [Image.open(io.BytesIO(data)).convert("RGB") for data in _photos()]
    tiles: list[tuple[int, int, Any]] = []
    for px in SIZES:
        smalls = []
        for original in originals:
            small = original.copy()
            small.thumbnail((px, px), reducing_gap=1.0)
            smalls.append(small)
        jpeg_size, jpeg_psnr = _mean(_encode(s, "JPEG", 80) for s in smalls)
        webp = {q: _mean(_encode(s, "WEBP", q) for s in smalls) for q in QUALITIES}
        good = [q for q, (_, p) in webp.items() if p >= jpeg_psnr - NOISE_DB]
        chosen = min(good, default=max(QUALITIES))
        size, psnr = webp[chosen]
        in_code = _quality_in_code(previews, px)
        tiles.append((px, chosen, smalls[0]))
        result.row(
            f"{px} px: JPEG 80 (before)", f"{jpeg_size / 1000:.1f} KB, PSNR {jpeg_psnr:.2f} dB"
        )
        result.row(
            f"{px} px: WebP {chosen} (lowest at least as close)",
            f"{size / 1000:.1f} KB ({size / jpeg_size:.0%} of the JPEG), PSNR {psnr:.2f} dB",
        )
        result.goal(
            f"{px} px: the code uses the measured WebP quality",
            f"quality {chosen}",
            f"quality {in_code}",
            in_code == chosen,
            "set _WEBP_QUALITY in cometnb/_core/images.py to the measured quality",
        )
    _write_sheet(tiles)
    result.notes.append(
        "PSNR against the downscaled pixels themselves (what the preview should show); the "
        "simulator's photo-like texture is noise-heavy, the hardest case for both codecs."
    )
    result.notes.append(
        f"Side by side, to look at: {SHEET.relative_to(ROOT)} (per size: the "
        "downscaled pixels, JPEG 80, the chosen WebP; the prompt label and the disc's edge, "
        "enlarged without smoothing)."
    )
    return result


def _write_sheet(tiles: list[tuple[int, int, Any]]) -> None:
    """One row per preview size: reference, JPEG 80 and WebP crops, labelled."""
    from PIL import Image, ImageDraw

    side, label_h = TILE, 18
    sheet = Image.new("RGB", (3 * side + 4 * 8, len(tiles) * (side + label_h + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (px, quality, small) in enumerate(tiles):
        box = tuple(round(f * small.width) for f in CROP_BOX)
        versions = [
            (f"{px} px: downscaled pixels", small),
            (f"{px} px: JPEG 80 (before)", _decoded(small, "JPEG", 80)),
            (f"{px} px: WebP {quality} (now)", _decoded(small, "WEBP", quality)),
        ]
        y = 8 + row * (side + label_h + 8)
        for col, (label, img) in enumerate(versions):
            x = 8 + col * (side + 8)
            draw.text((x, y), label, fill="black")
            crop = img.crop(box).resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(crop, (x, y + label_h))
    sheet.save(SHEET, optimize=True)


def _decoded(img: Any, fmt: str, quality: int) -> Any:
    return _codec(img, fmt, quality)[1]


def _codec(img: Any, fmt: str, quality: int) -> tuple[int, Any]:
    """Encoded size in bytes, and the image as a viewer decodes it."""
    from PIL import Image

    out = io.BytesIO()
    extra = {"method": need("cometnb._core.images")._WEBP_METHOD} if fmt == "WEBP" else {}
    img.save(out, fmt, quality=quality, **extra)
    return len(out.getvalue()), Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _photos() -> list[bytes]:
    import base64

    import httpx

    found = []
    with simulator(texture="photo") as sim:
        for prompt in PROMPTS:
            answer = httpx.post(
                f"{sim.base_url}/images/generations",
                json={"model": PHOTO_MODEL, "prompt": prompt, "size": PHOTO_SIZE},
                headers={"Authorization": f"Bearer {BENCH_KEY}"},
                timeout=60,
            )
            found.append(base64.b64decode(answer.json()["data"][0]["b64_json"]))
    return found


def _mean(pairs: Any) -> tuple[float, float]:
    sizes, psnrs = zip(*pairs, strict=True)
    return sum(sizes) / len(sizes), sum(psnrs) / len(psnrs)


def _encode(img: Any, fmt: str, quality: int) -> tuple[float, float]:
    from PIL import ImageChops, ImageStat

    size, decoded = _codec(img, fmt, quality)
    rms = ImageStat.Stat(ImageChops.difference(img, decoded)).rms
    mse = sum(v * v for v in rms) / len(rms)
    return size, 10 * math.log10(255**2 / mse) if mse else 99.0


def _quality_in_code(previews: Any, px: int) -> int:
    table: dict[int, int] = previews._WEBP_QUALITY
    return next(q for side, q in sorted(table.items(), reverse=True) if px >= side)
