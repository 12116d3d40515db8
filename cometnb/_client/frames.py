"""Tracebacks that end at our last frame: no library frame's locals can show the key.

A traceback that shows locals (``%xmode Verbose``, pdb, rich, Sentry) prints every frame it
holds. Ours hold the key only as a :class:`~cometnb._core.secret.Secret`, but the frames of
httpx, httpcore and h11 below them hold the request's raw header bytes (``Authorization:
Bearer sk-…``) while they write or read. So an exception that passes up through them (an
interrupt while waiting on the socket, an unexpected error) has its traceback cut after the
last cometnb frame, for itself and every exception chained to it.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

__all__ = ["drop_library_frames"]

# As imported and with symlinks resolved: frames carry the path the module was loaded from.
_PACKAGE = tuple({str(Path(__file__).parents[1]), str(Path(__file__).resolve().parents[1])})


def _ours(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(_PACKAGE)


def _cut(tb: TracebackType | None) -> None:
    last_ours = None
    node = tb
    while node is not None:
        if _ours(node):
            last_ours = node
        node = node.tb_next
    if last_ours is not None:
        last_ours.tb_next = None


def drop_library_frames(exc: BaseException) -> BaseException:
    """Cut ``exc``'s traceback (and its chain's) after the last cometnb frame; returns ``exc``."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        _cut(node.__traceback__)
        if node.__cause__ is not None:
            _cut(node.__cause__.__traceback__)
        node = node.__context__
    return exc
