"""The "Content Credentials" mark: a small badge on an image that carries a C2PA manifest, its
details (issuer, claim generator, digital source type, validation) one click away in an HTML
``<details>`` element (no script), nothing at all when the image carries none, and "invalid"
said plainly when the manifest no longer binds the bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cometnb._core.provenance import INSTALL_HINT, source_type_label
from cometnb._views.common import BADGE, esc

if TYPE_CHECKING:
    from collections.abc import Callable

    from cometnb._core.generations import GeneratedImage
    from cometnb._core.provenance import ContentCredentials
    from cometnb._storage.records import Record

__all__ = ["credentials_mark", "image_mark", "record_mark"]

_COLOURS = {"valid": "#1f4e79", "invalid": "#c62828", "unverified": "#616161"}
# The "cr" pin of the Content Credentials icon, drawn in text (no image, no font).
_CR = (
    '<b style="border:1px solid currentColor;border-radius:4px;padding:0 2px;margin-right:4px;'
    'font-size:10px">cr</b>'
)
_ROW = "padding:1px 8px 1px 0;vertical-align:top;text-align:left;overflow-wrap:anywhere;"


def image_mark(img: GeneratedImage) -> str:
    """The mark for one image ("" when it carries no Content Credentials)."""
    return credentials_mark(_safely(lambda: img.c2pa))


def record_mark(rec: Record) -> str:
    """The mark for a record (its first image with Content Credentials; "" when none)."""
    return credentials_mark(_safely(lambda: rec.c2pa))


def credentials_mark(cc: ContentCredentials | None) -> str:
    """A ``<details>`` badge: "Content Credentials" (valid), "Content Credentials: invalid" or
    "Content Credentials (not checked)"; the summary opens a table of what the manifest says."""
    if cc is None:
        return ""
    label = {
        "valid": "Content Credentials",
        "invalid": "Content Credentials: invalid",
        "unverified": "Content Credentials (not checked)",
    }[cc.state]
    badge = (
        f'<span style="{BADGE}background:{_COLOURS[cc.state]};color:#fff" '
        f'title="{esc(cc.summary)}">{_CR}{esc(label)}</span>'
    )
    rows = "".join(
        f'<tr><th style="{_ROW}font-weight:600;white-space:nowrap">{esc(k)}</th>'
        f'<td style="{_ROW}">{esc(v)}</td></tr>'
        for k, v in _details(cc)
    )
    return (
        f'<details class="cometnb-c2pa cometnb-c2pa-{cc.state}" '
        'style="display:block;margin:2px 0;font-size:11px">'
        f'<summary style="cursor:pointer">{badge}</summary>'
        f'<table style="border-collapse:collapse;margin:2px 0 2px 14px;font-size:11px;'
        f'max-width:480px">{rows}</table></details>'
    )


def _details(cc: ContentCredentials) -> list[tuple[str, str]]:
    if cc.state == "unverified":
        return [("status", "a C2PA manifest is embedded"), ("to read it", INSTALL_HINT)]
    kind = cc.digital_source_type
    rows = [
        ("validation", _validation(cc)),
        ("issued by", cc.issuer or "(not named)"),
        ("claim generator", cc.claim_generator or "(not named)"),
        ("source type", f"{source_type_label(kind)} ({kind})" if kind else "(not stated)"),
        ("signer", "on a trust list" if cc.trusted else "not checked against a trust list"),
    ]
    if cc.signed_at:
        rows.append(("signed", cc.signed_at))
    rows.extend(("problem", p) for p in cc.problems[:6])
    return rows


def _validation(cc: ContentCredentials) -> str:
    if cc.valid:
        return "valid: the signature holds and binds these exact bytes"
    return "invalid: the image was changed after signing, or the manifest is damaged"


def _safely(read: Callable[[], ContentCredentials | None]) -> ContentCredentials | None:
    try:
        return read()
    except Exception:  # a damaged file or a library fault must never break a view
        return None
