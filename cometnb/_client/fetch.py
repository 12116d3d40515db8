"""Downloading a URL result: checked addresses, checked redirects, bounded size and time.

The URL comes from the server, so every hop is checked by
:func:`~cometnb._client.fetch_guard.check_image_url` (http(s), public addresses; loopback only
when the API itself is on loopback) and redirects are followed by hand, at most
:data:`~cometnb._client.fetch_guard.MAX_REDIRECTS`. The body is read through a
:class:`~cometnb._client.capped.Budget` (one image's size, ``ByteLimits.download_s`` in all), and
errors name the host and the HTTP status, never a byte of the body. The download goes through
the HTTP seam (:mod:`cometnb._client.http`: one encoding layer, decoded bytes counted as they
arrive) without the ``Authorization`` header: it goes to another host.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from cometnb._client.capped import Budget
from cometnb._client.fetch_guard import MAX_REDIRECTS, Target, pin_image_url, redirect_target
from cometnb._client.http import AsyncHttp, Http, aread_body, read_body
from cometnb._core.byte_limits import ByteLimits
from cometnb._core.errors import ResponseError

__all__ = ["adownload", "download", "download_error"]

_HINT = (
    "Image URLs expire (about 60 minutes); the generation was billed, so run it again only if "
    "you need the image."
)


def download_error(url: str, why: str) -> ResponseError:
    """The error for a download that failed; names the host, not the URL's query or the body."""
    try:
        host = httpx.URL(url).host or "the image host"
    except httpx.InvalidURL:
        host = "the image host"
    return ResponseError(f"Could not download the generated image from {host}: {why}.", hint=_HINT)


def _budget(url: str, limits: ByteLimits) -> Budget:
    host = httpx.URL(url).host or "the image host"
    return Budget(
        host, "the image download", limit=limits.download_bytes, seconds=limits.download_s
    )


def download(http: Http, url: str, *, allow_loopback: bool, limits: ByteLimits) -> bytes:
    """GET ``url`` (following checked redirects); the image bytes or a :class:`ResponseError`."""
    target = pin_image_url(url, allow_loopback=allow_loopback)
    budget = _budget(url, limits)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with http.open("GET", target.connect, accept="*/*", **_pinned(target)) as response:
                location = redirect_target(response, target.url)
                if location is None:
                    if not response.is_success:
                        raise download_error(url, f"HTTP {response.status_code}")
                    return read_body(response, budget)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise download_error(url, type(exc).__name__) from None
        target = pin_image_url(location, allow_loopback=allow_loopback)
        url = location
    raise download_error(url, f"more than {MAX_REDIRECTS} redirects")


def _pinned(target: Target) -> dict[str, Any]:
    """The GET for a checked target goes to the address that was checked, under the host's
    name (the ``Host`` header and the TLS server name)."""
    return {"headers": target.headers, "extensions": target.extensions}


async def adownload(
    http: AsyncHttp, url: str, *, allow_loopback: bool, limits: ByteLimits
) -> bytes:
    """Async :func:`download` (host names are resolved off the event loop)."""
    target = await asyncio.to_thread(pin_image_url, url, allow_loopback=allow_loopback)
    budget = _budget(url, limits)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            opened = http.open("GET", target.connect, accept="*/*", **_pinned(target))
            async with opened as response:
                location = redirect_target(response, target.url)
                if location is None:
                    if not response.is_success:
                        raise download_error(url, f"HTTP {response.status_code}")
                    return await aread_body(response, budget)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise download_error(url, type(exc).__name__) from None
        target = await asyncio.to_thread(pin_image_url, location, allow_loopback=allow_loopback)
        url = location
    raise download_error(url, f"more than {MAX_REDIRECTS} redirects")
