"""Every protocol one layer implements for another, in one place.

The arrows run one way (core <- storage <- client <- notebook), so where a lower layer needs
something from a higher one it names a protocol here and gets an implementation injected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from cometnb._core.errors import CometError
    from cometnb._core.generations import (
        ApiResult,
        ClientEvent,
        GeneratedImage,
        Generation,
        Grid,
        ImageRequest,
    )
    from cometnb._core.progress import CellProgress

__all__ = ["AsyncRunner", "CellView", "HistorySink", "RecordLike", "Runner"]

OnPartial = Callable[[int, bytes], None]
OnEvent = Callable[["ClientEvent"], None]


class RecordLike(Protocol):
    """What a client reads back from a stored record."""

    @property
    def id(self) -> str: ...
    @property
    def images(self) -> list[GeneratedImage]: ...


class HistorySink(Protocol):
    """What a client needs from a history (``cometnb.History`` implements it)."""

    def check_writable(self) -> None: ...

    def record_success(
        self,
        request: dict[str, Any],
        result: ApiResult,
        *,
        elapsed_s: float,
        tags: tuple[str, ...] = ...,
        origin: str | None = ...,
    ) -> RecordLike: ...

    def record_failure(
        self,
        request: dict[str, Any],
        error: CometError,
        *,
        elapsed_s: float,
        tags: tuple[str, ...] = ...,
        origin: str | None = ...,
        status: Literal["error", "cancelled"] = ...,
    ) -> RecordLike: ...


class Runner(Protocol):
    """Sends one prepared request and stores it (``cometnb.Client`` implements it).

    ``History.rerun`` takes one, so storage never imports the client.
    """

    def run(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = ...,
        on_event: OnEvent | None = ...,
        tags: Sequence[str] = ...,
        origin: str | None = ...,
    ) -> Generation: ...

    def close(self) -> None: ...


class AsyncRunner(Protocol):
    """What the grid runner sends each cell through (``cometnb.AsyncClient`` implements it):
    one request the caller has checked (validated, tags, history) to its outcome; a failure is
    a Generation, not raised; the budget is the runner's. ``patient``: a run of several."""

    async def send_checked(
        self,
        request: ImageRequest,
        *,
        on_partial: OnPartial | None = ...,
        on_event: OnEvent | None = ...,
        tags: tuple[str, ...] = ...,
        origin: str | None = ...,
        patient: bool = ...,
    ) -> Generation: ...


class CellView(Protocol):
    """What a ``%%cometimg`` cell shows while it runs; the cell engine drives it.

    ``update`` gets the grid runner's per-cell progress (on the kernel's main thread, every
    poll), ``finish`` the result, ``clear`` is called when the cell ends without one.
    """

    @property
    def shows_result(self) -> bool:
        """True when the final view is already on screen (IPython must not show it again)."""
        ...

    def update(self, progress: Sequence[CellProgress]) -> None: ...

    def finish(self, result: Generation | Grid) -> None: ...

    def clear(self) -> None: ...
