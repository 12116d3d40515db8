"""SVG answers: recognised, checked as XML, measured and drawn to a raster, never shown as markup.

An SVG is a document a browser executes when it is inlined: it may carry ``<script>``, event
handlers (``onload``) and references to other files or hosts. cometnb keeps the server's bytes
exactly (the history's original) and shows only a raster drawn from them:

* :func:`check_svg` parses the bytes with defusedxml (a plain ``<!DOCTYPE svg …>``, which many
  SVG writers emit, is accepted; entity declarations and external entities are refused, so
  nothing is expanded or fetched) within :data:`SVG_MAX_BYTES`, and reads the intrinsic size;
* :func:`render_svg` draws a copy with resvg (resvg-py: a Rust renderer shipped as an abi3 wheel
  with no system library, unlike CairoSVG, which needs libcairo). resvg runs no script and
  fetches nothing from the network, but it does read the local files an ``href`` names, so the
  copy it draws has every reference outside the document removed first (only ``#id`` and raster
  ``data:`` URIs stay).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cometnb._core.byte_limits import MB
from cometnb._core.errors import ResponseError

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = ["SVG_MAX_BYTES", "SvgInfo", "check_svg", "is_svg", "render_svg"]

# Generous for a drawing (the API's run to tens of kB) and small enough to parse at once.
SVG_MAX_BYTES = 8 * MB

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_HEAD = 1024

# Lengths in an SVG's width / height, in CSS pixels (96 per inch).
_UNITS = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54}
_UNITS["mm"] = _UNITS["cm"] / 10
_LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*")
_DEFAULT_SIDE = 100  # what resvg assumes for an SVG without width, height or viewBox
_MAX_SIDE = 100_000

# References the raster copy keeps: inside the document, or raster bytes inline.
_SAFE_HREF = re.compile(r"#|data:image/(png|jpeg|webp|gif);base64,", re.I)


def is_svg(head: bytes) -> bool:
    """True when a file's first bytes are an SVG document (an XML declaration, comment or
    doctype may come first)."""
    text = bytes(head[:_HEAD]).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg"))
    return starts and b"<svg" in text


@dataclass(frozen=True)
class SvgInfo:
    """A checked SVG: its intrinsic size in pixels and the parsed document."""

    width: int
    height: int
    root: Element


def check_svg(data: bytes) -> SvgInfo:
    """Parse ``data`` as an SVG document; :class:`ResponseError` naming what is wrong when it is
    too large, not XML, declares entities, or its root is not ``<svg>``."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    if len(data) > SVG_MAX_BYTES:
        raise ResponseError(
            f"the server sent an SVG of {len(data):,} bytes, more than the "
            f"{SVG_MAX_BYTES:,} cometnb checks; it was not opened"
        )
    try:
        root = fromstring(data, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ResponseError(
            f"the server sent an SVG that declares entities ({type(exc).__name__}); "
            "cometnb does not expand them"
        ) from None
    except (ParseError, ValueError) as exc:
        raise ResponseError(f"the server sent an SVG that is not well-formed XML ({exc})") from None
    if root.tag not in (f"{{{_SVG_NS}}}svg", "svg"):
        raise ResponseError(f"the server sent XML whose root is <{_local(root.tag)}>, not <svg>")
    width, height = _size(root)
    return SvgInfo(width, height, root)


def render_svg(data: bytes, max_px: int) -> bytes:
    """A PNG of the SVG whose longer side is ``max_px`` (a vector scales up as well as down),
    drawn from a copy with scripts, event handlers and external references removed."""
    from xml.etree.ElementTree import tostring

    import resvg_py

    info = check_svg(data)
    _disarm(info.root)
    wide = info.width >= info.height
    try:
        # No resources_dir: every file reference is gone already, so none is resolved.
        png = resvg_py.svg_to_bytes(
            svg_string=tostring(info.root, "unicode"),
            width=max_px if wide else None,
            height=None if wide else max_px,
        )
        return bytes(png)
    except ValueError as exc:
        raise ResponseError(f"the SVG could not be drawn ({exc})") from None


def _disarm(root: Element) -> None:
    """Remove every reference outside the document: resvg reads the file an ``<image>`` or
    ``<use>`` names (an absolute path, or one relative to the working folder)."""
    for element in root.iter():
        for name in list(element.attrib):
            is_href = name == _XLINK_HREF or _local(name) == "href"
            if is_href and not _SAFE_HREF.match(element.attrib[name].strip()):
                del element.attrib[name]


def _local(tag: object) -> str:
    text = tag if isinstance(tag, str) else ""  # comments and processing instructions
    return text.rsplit("}", 1)[-1]


def _size(root: Element) -> tuple[int, int]:
    """The intrinsic size: width / height in absolute units, else the viewBox's, else 100."""
    box = _view_box(root.get("viewBox"))
    width, height = _length(root.get("width")), _length(root.get("height"))
    if box is not None:
        if width is None and height is None:
            width, height = box
        elif width is None and height is not None:
            width = height * box[0] / box[1]
        elif height is None and width is not None:
            height = width * box[1] / box[0]
    sides = [min(_MAX_SIDE, max(1, round(s))) if s else _DEFAULT_SIDE for s in (width, height)]
    return sides[0], sides[1]


def _length(value: str | None) -> float | None:
    match = _LENGTH.fullmatch(value or "")
    if match is None or match.group(2) not in _UNITS:
        return None  # absent, a percentage or em: the viewBox decides
    pixels = float(match.group(1)) * _UNITS[match.group(2)]
    return pixels if pixels > 0 else None


def _view_box(value: str | None) -> tuple[float, float] | None:
    parts = (value or "").replace(",", " ").split()
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    if len(numbers) != 4 or numbers[2] <= 0 or numbers[3] <= 0:
        return None
    return numbers[2], numbers[3]
