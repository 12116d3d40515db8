"""Which image URLs the client may download: http(s) on public addresses only.

A result's ``url`` comes from the server, so a hostile or compromised server could point it
(or a redirect from it) at the user's own network: ``http://169.254.169.254/`` (cloud metadata),
``http://10.0.0.1/admin``, ``file:///etc/passwd``. Only http(s) URLs whose host resolves to
public addresses are fetched, every redirect hop is checked the same way, and loopback is
allowed only when the API itself is on loopback (the simulator). Errors name the host and the
kind of address, never any byte of a body.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import httpx

from cometnb._core.errors import ResponseError

__all__ = ["MAX_REDIRECTS", "Resolver", "check_image_url", "is_loopback_host", "redirect_target"]

MAX_REDIRECTS = 5
Resolver = Callable[[str], list[str]]
_HINT = "cometnb downloads result images only from public http(s) hosts; nothing was fetched."
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _resolve(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _unmapped(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback literals (where the simulator runs)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    addr = _literal(host)
    return addr is not None and _unmapped(addr).is_loopback


def _kind(addr: IPAddress) -> str | None:
    """Why ``addr`` may not be fetched (``None`` when it is a public address)."""
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_private:
        return "a private address"
    if addr.is_multicast or addr.is_unspecified or addr.is_reserved or not addr.is_global:
        return "a non-public address"
    return None


def _refuse(host: str, why: str) -> ResponseError:
    return ResponseError(f"The image URL from the server points to {host}, {why}.", hint=_HINT)


def check_image_url(
    url: str, *, allow_loopback: bool, resolve: Resolver | None = None
) -> httpx.URL:
    """The parsed URL when it may be fetched; :class:`ResponseError` naming why not."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        scheme = f"'{parsed.scheme}:'" if parsed is not None and parsed.scheme else "no"
        raise ResponseError(
            f"The server returned an image URL that is not http(s) or has no host ({scheme} "
            "scheme).",
            hint=_HINT,
        )
    host = parsed.host
    if allow_loopback and is_loopback_host(host):
        return parsed
    literal = _literal(host)
    try:
        addresses = [literal] if literal else [_literal(a) for a in (resolve or _resolve)(host)]
    except (OSError, UnicodeError):
        return parsed  # unresolvable: httpx reports the connect error as a failed download
    for addr in addresses:
        why = _kind(_unmapped(addr)) if addr is not None else "an address that cannot be parsed"
        if why is not None:
            raise _refuse(host, why)
    return parsed


def redirect_target(response: httpx.Response) -> str | None:
    """The absolute URL a redirect response points to (``None`` when it is no redirect)."""
    if response.status_code not in _REDIRECTS:
        return None
    location = response.headers.get("location")
    if not location:
        return None
    try:
        return str(response.url.join(location))
    except httpx.InvalidURL:
        return None
