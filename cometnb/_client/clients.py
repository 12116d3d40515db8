"""The CometAPI image client: :class:`Client` (sync) and :class:`AsyncClient` (asyncio).

As in httpx, one base class (:class:`~cometnb._client.base._BaseClient`) holds everything that
is not I/O — request building, headers, the retry policy, error mapping, response and stream
parsing, storage — and the two clients (:mod:`~cometnb._client.sync_client`,
:mod:`~cometnb._client.async_client`) differ only in how they send, read, sleep and run the
blocking history writes.

Flow of one request: validate (nothing is sent for a request the model cannot take) → resolve
the key → POST with billing-aware retries (:mod:`~cometnb._client.exchange`,
:mod:`~cometnb._client.retry`) → parse JSON or SSE (:mod:`~cometnb._client.exchange`,
:mod:`~cometnb._client.exchange`) → decode base64 / download URLs at once → store in the history →
:class:`~cometnb._core.generations.Generation`. Every failure after validation is recorded in the
history before it is raised.
"""

from __future__ import annotations

from cometnb._client.async_client import AsyncClient
from cometnb._client.base import OnEvent, OnPartial, OnResult
from cometnb._client.sync_client import Client

__all__ = ["AsyncClient", "Client", "OnEvent", "OnPartial", "OnResult"]
