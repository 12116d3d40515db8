"""What the simulator answers beside image requests: the two side lookups cometnb makes
(``_client/lookups.py``), CometAPI's public model catalog and the account's quota.

**The catalog**, ``GET /api/models``, in the shape CometAPI documents: ``{"success": true,
"data": [{"id", "pricing": {"currency", "input", "output", "per_request", "per_second"}}]}``
(the shared fixture ``api-models.json``). Figures follow CometAPI's example: token models at
0.8× the built-in (OpenAI) rates in "USD / M Tokens"; per-image models one price per request,
the cheapest list price; models without a built-in price (qwen-image and the like) the
fixture's $0.03 per request.

**The quota**, ``GET /user/quota?key=…`` (API_FACTS §11): :class:`Quota` is what the account
holds (``SimServer.quota``; tests change it on the fly; each answered generation or edit is
charged at its estimate) and how the endpoint misbehaves when asked (``fault``: ``"500"``,
``"401"``, ``"html"``, ``"not_json"``, ``"shape"`` (JSON without ``total_quota``), ``"slow"``
(answers after ``delay`` seconds)). :func:`answer` turns a request into the documented body.
The key arrives in the query string: it is compared and counted, never kept.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cometnb._core.prices import builtin_table

__all__ = [
    "LATER_MODELS",
    "QUOTA_FAULTS",
    "QUOTA_PATH",
    "Quota",
    "answer",
    "catalog_body",
    "hide_key",
]

# --- the public model catalog -------------------------------------------------------------

# Ids cometnb has no row for that the simulator serves and lists (``/v1/models`` and the
# catalog), as CometAPI would list a model released after this cometnb: a test sees
# ``refresh_prices()`` learn it as ``assumed`` with its family's rules.
LATER_MODELS = ("gpt-image-2.7-flare",)

DISCOUNT = 0.8  # CometAPI's example: gpt-image-2 input 4, output 24 against OpenAI's 5 / 30
UNPRICED_PER_REQUEST = 0.03


def _entry(name: str) -> dict[str, Any]:
    price = builtin_table().get(name)
    pricing: dict[str, Any] = {"input": None, "output": None, "per_request": None}
    if price is not None and price.image_out is not None:
        pricing["currency"] = "USD / M Tokens"
        pricing["input"] = round((price.text_in or 0.0) * DISCOUNT, 6)
        pricing["output"] = round(price.image_out * DISCOUNT, 6)
    else:
        pricing["currency"] = "USD"
        cheapest = [v for row in price.per_image.values() for v in row.values()] if price else []
        pricing["per_request"] = min(cheapest) if cheapest else UNPRICED_PER_REQUEST
    pricing["per_second"] = None
    return {"id": name, "pricing": pricing}


def catalog_body(models: Iterable[str]) -> dict[str, Any]:
    """The catalog listing ``models`` (sorted), as the simulator serves it."""
    return {"success": True, "data": [_entry(m) for m in sorted(models)]}


# --- the account's quota ------------------------------------------------------------------

QUOTA_PATH = "/user/quota"
QUOTA_FAULTS = ("500", "401", "html", "not_json", "shape", "slow")
_KEY_IN_QUERY = re.compile(r"([?&]key=)[^&\s\"']*")


def hide_key(text: str) -> str:
    """A request line with the ``key=`` query value starred (what a verbose log may print)."""
    return _KEY_IN_QUERY.sub(r"\1***", text)


@dataclass
class Quota:
    """The simulated account: ``total_usd`` left, ``used_usd`` spent, the asking key's own
    ``key_remaining_usd`` (``None``: unlimited, sent as -1), and the endpoint's ``fault``."""

    total_usd: float = 50.0
    used_usd: float = 0.0
    key_remaining_usd: float | None = None
    fault: str | None = None
    delay: float = 0.0  # seconds before a "slow" answer
    asked: int = 0  # how many requests reached the endpoint
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self) -> None:
        with self._lock:
            self.asked += 1

    def charge(self, body: dict[str, object]) -> None:
        """A request the simulator answers is paid from the account at its estimate (the
        price table's), so the balance falls as images are made, as on the real account."""
        from cometnb._core.prices import estimate

        usd = estimate(body).usd or 0.0
        with self._lock:
            self.total_usd = max(0.0, self.total_usd - usd)
            self.used_usd += usd


def _error(message: str) -> bytes:
    # CometAPI's error shape for this route is not documented; its API answers this form.
    return json.dumps({"success": False, "message": message}).encode()


def answer(quota: Quota, query: str, expected_key: str | None) -> tuple[int, bytes, str]:
    """``(status, body, content type)`` for one ``GET /user/quota`` with ``query``."""
    quota.count()
    params = parse_qs(query)
    key = (params.get("key") or [""])[0]
    accepted = bool(key) and (
        expected_key is None or hmac.compare_digest(key.encode(), expected_key.encode())
    )
    if quota.fault == "401" or not accepted:
        return 401, _error("invalid key" if key else "missing key"), "application/json"
    if quota.fault == "500":
        return 500, _error("internal error"), "application/json"
    if quota.fault == "html":
        return 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
    if quota.fault == "not_json":
        return 200, b"quota: plenty", "text/plain"
    if quota.fault == "shape":
        return 200, json.dumps({"username": "sim", "keys": []}).encode(), "application/json"
    body: dict[str, object] = {
        "username": "cometnb-sim",
        "total_quota": round(quota.total_usd, 6),
        "total_used_quota": round(quota.used_usd, 6),
        "request_count": quota.asked,
        "keys": [
            {
                "name": "cometnb-sim",
                "remain_quota": -1 if quota.key_remaining_usd is None else quota.key_remaining_usd,
                "used_quota": round(quota.used_usd, 6),
            }
        ],
    }
    start = (params.get("start_date") or [""])[0]
    if start:
        body["daily_quota"] = {
            start: [{"token_name": "cometnb-sim", "quota_used": quota.used_usd, "request_count": 0}]
        }
    return 200, json.dumps(body).encode(), "application/json"
