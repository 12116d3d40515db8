"""The caps on one reply, counted without doing any I/O: :class:`Budget` and friends.

A reply's size (decoded bytes) and total time are charged to a :class:`Budget` as they
arrive; going over a :class:`~cometnb._core.byte_limits.ByteLimits` cap ends in one
:class:`ResponseError` ("… sent more than N MB …"), never a ``MemoryError``. The reading
itself (one encoding layer, decoded a step at a time, one growing buffer) is the HTTP seam,
:mod:`cometnb._client.http`; :class:`LineSplitter` splits a stream into bounded lines and
:class:`CappedSSEDecoder` also bounds one event's joined ``data:`` lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from cometnb._client.sse import SSEDecoder, SSEEvent
from cometnb._core.byte_limits import MB, ByteLimits
from cometnb._core.errors import ResponseError

__all__ = [
    "BILLED_HINT",
    "Budget",
    "CappedSSEDecoder",
    "LineSplitter",
    "error_budget",
    "result_budget",
    "stream_budget",
]

BILLED_HINT = "The generation may have been billed; it was not retried."


def _mb(size: int) -> str:
    return f"{size / MB:.3g} MB"


class Budget:
    """Counts the bytes of one reply and watches its deadline.

    Example::

        >>> b = Budget("example.com", "the result", limit=2 * MB, seconds=60)
        >>> b.take(MB)
        >>> try:
        ...     b.take(MB + 1)
        ... except ResponseError as exc:
        ...     print(exc.message)
        example.com sent more than 2 MB for the result; the rest was not read.
    """

    def __init__(
        self, host: str, what: str, *, limit: int, seconds: float, hint: str = BILLED_HINT
    ) -> None:
        self.host, self.what, self.limit, self.hint = host, what, limit, hint
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.used = 0

    def take(self, size: int) -> None:
        """Account for ``size`` more bytes (0 just checks the clock)."""
        self.used += size
        if self.used > self.limit:
            raise ResponseError(
                f"{self.host} sent more than {_mb(self.limit)} for {self.what}; the rest was "
                "not read.",
                hint=self.hint,
            )
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ResponseError(
                f"{self.host} was still sending {self.what} after {self.seconds:g} s; "
                f"stopped reading ({_mb(self.used)} received).",
                hint=self.hint,
            )


class LineSplitter:
    """Bytes → lines (``\\n``, ``\\r\\n`` or ``\\r`` end one), each at most ``limit`` bytes."""

    def __init__(self, budget: Budget, limit: int) -> None:
        self.budget, self.limit = budget, limit
        self._buf = bytearray()
        self._cr = False  # the last chunk ended in "\r": a "\n" next belongs to it

    def feed(self, chunk: bytes) -> list[str]:
        self.budget.take(len(chunk))  # the stream's total, and its deadline
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        lines = []
        start = 0
        for end, width in _line_ends(chunk):
            self._grow(chunk[start:end])
            lines.append(self._take())
            start = end + width
        self._grow(chunk[start:])
        return lines

    def flush(self) -> list[str]:
        return [self._take()] if self._buf else []

    def discard(self) -> None:
        """Let go of a partial line (the read failed: nothing it held is kept)."""
        self._buf = bytearray()

    def _grow(self, piece: bytes) -> None:
        if len(self._buf) + len(piece) > self.limit:
            self._buf.clear()
            raise ResponseError(
                f"{self.budget.host} sent a stream line longer than {_mb(self.limit)}; the rest "
                "was not read.",
                hint=self.budget.hint,
            )
        self._buf += piece

    def _take(self) -> str:
        line = self._buf.decode("utf-8", "replace")
        self._buf.clear()
        return line


def _line_ends(chunk: bytes) -> Iterator[tuple[int, int]]:
    """``(index, width)`` of every line end in ``chunk``."""
    if b"\r" not in chunk:  # the usual case: fast
        start = 0
        while (found := chunk.find(b"\n", start)) >= 0:
            yield found, 1
            start = found + 1
        return
    index = 0
    while index < len(chunk):
        byte = chunk[index]
        if byte == 0x0D:
            width = 2 if chunk[index + 1 : index + 2] == b"\n" else 1
            yield index, width
            index += width
            continue
        if byte == 0x0A:
            yield index, 1
        index += 1


class CappedSSEDecoder(SSEDecoder):
    """An :class:`SSEDecoder` whose events (their joined ``data:`` lines) are bounded too."""

    def __init__(self, host: str, limit: int) -> None:
        super().__init__()
        self.host, self.limit = host, limit
        self._size = 0

    def feed(self, line: str) -> SSEEvent | None:
        if line.startswith("data"):
            self._size += len(line)
            if self._size > self.limit:
                self._size = 0
                self._data.clear()
                raise ResponseError(
                    f"{self.host} sent a stream event larger than {_mb(self.limit)}; the rest "
                    "was not read.",
                    hint=BILLED_HINT,
                )
        event = super().feed(line)
        if event is not None or not line.strip():
            self._size = 0
        return event

    def flush(self) -> SSEEvent | None:
        self._size = 0
        return super().flush()


# --- the budgets of one attempt ------------------------------------------------------------


def result_budget(host: str, limits: ByteLimits, body: Mapping[str, Any], started: float) -> Budget:
    """A JSON result body: ``n`` images; the attempt's deadline counts from ``started``."""
    budget = Budget(
        host, "the result", limit=limits.json_body_bytes(_n(body)), seconds=limits.deadline_s
    )
    budget.deadline = started + limits.deadline_s
    return budget


def stream_budget(host: str, limits: ByteLimits, body: Mapping[str, Any], started: float) -> Budget:
    """A streamed result: every partial and final image of ``n``, each at most one line."""
    events = _n(body) * (int(body.get("partial_images") or 0) + 1)
    budget = Budget(
        host,
        "the stream",
        limit=events * limits.sse_line_bytes + MB,
        seconds=limits.deadline_s,
    )
    budget.deadline = started + limits.deadline_s
    return budget


def error_budget(host: str, limits: ByteLimits, started: float) -> Budget:
    """An error body (real ones are a few hundred bytes)."""
    budget = Budget(
        host, "an error reply", limit=limits.error_body_bytes, seconds=limits.deadline_s
    )
    budget.deadline = started + limits.deadline_s
    return budget


def _n(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
