"""Downloading a URL result: checked addresses, checked redirects, bounded size and time.

The URL comes from the server, so every hop is checked by
:func:`~cometnb._client.fetch_guard.check_image_url` (http(s), public addresses; loopback only
when the API itself is on loopback) and redirects are followed by hand, at most
:data:`~cometnb._client.fetch_guard.MAX_REDIRECTS`. The body is read through a
:class:`~cometnb._client.capped.Budget` (one image's size, ``Limits.download_s`` in all), and
errors name the host and the HTTP status, never a byte of the body. The download is sent
without the ``Authorization`` header: it goes to another host.
"""

from __future__ import annotations

import asyncio

import httpx

from cometnb._client.capped import Budget, aread_capped, read_capped
from cometnb._client.fetch_guard import MAX_REDIRECTS, check_image_url, redirect_target
from cometnb._core.errors import ResponseError
from cometnb._core.limits import Limits

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


def _budget(url: str, limits: Limits) -> Budget:
    host = httpx.URL(url).host or "the image host"
    return Budget(
        host, "the image download", limit=limits.download_bytes, seconds=limits.download_s
    )


def download(
    http: httpx.Client, url: str, *, user_agent: str, allow_loopback: bool, limits: Limits
) -> bytes:
    """GET ``url`` (following checked redirects); the image bytes or a :class:`ResponseError`."""
    check_image_url(url, allow_loopback=allow_loopback)
    budget = _budget(url, limits)
    for _ in range(MAX_REDIRECTS + 1):
        request = http.build_request("GET", url, headers={"User-Agent": user_agent})
        try:
            response = http.send(request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise download_error(url, type(exc).__name__) from None
        try:
            target = redirect_target(response)
            if target is None:
                if not response.is_success:
                    raise download_error(url, f"HTTP {response.status_code}")
                return read_capped(response, budget)
        except httpx.HTTPError as exc:
            raise download_error(url, type(exc).__name__) from None
        finally:
            response.close()
        check_image_url(target, allow_loopback=allow_loopback)
        url = target
    raise download_error(url, f"more than {MAX_REDIRECTS} redirects")


async def adownload(
    http: httpx.AsyncClient, url: str, *, user_agent: str, allow_loopback: bool, limits: Limits
) -> bytes:
    """Async :func:`download` (host names are resolved off the event loop)."""
    await asyncio.to_thread(check_image_url, url, allow_loopback=allow_loopback)
    budget = _budget(url, limits)
    for _ in range(MAX_REDIRECTS + 1):
        request = http.build_request("GET", url, headers={"User-Agent": user_agent})
        try:
            response = await http.send(request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise download_error(url, type(exc).__name__) from None
        try:
            target = redirect_target(response)
            if target is None:
                if not response.is_success:
                    raise download_error(url, f"HTTP {response.status_code}")
                return await aread_capped(response, budget)
        except httpx.HTTPError as exc:
            raise download_error(url, type(exc).__name__) from None
        finally:
            await response.aclose()
        await asyncio.to_thread(check_image_url, target, allow_loopback=allow_loopback)
        url = target
    raise download_error(url, f"more than {MAX_REDIRECTS} redirects")
