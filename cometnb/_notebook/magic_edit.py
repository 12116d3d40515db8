"""``%%cometimg --image SRC [--image SRC…] [--mask SRC] [--fidelity low|high]``.

Each SRC is what :func:`cometnb._core.edit_inputs.resolve_source` takes as text: a file path,
``@ID``, ``@ID:K``, ``@-1``, or ``{name}`` naming a notebook value (bytes, a PIL image, a Path,
a ``GeneratedImage``, a ``Generation`` or a ``Record``). Sources are resolved once per cell, so
a grid over prompts, models or qualities sends the same inputs in every cell.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

from cometnb._core.edit_inputs import HistoryLookup, resolve_source
from cometnb._core.model_registry import FIDELITIES

__all__ = ["edit_fields", "expand_option_braces"]

# Options whose {name} is filled in from the namespace, as IPython would have done before the
# magic turned its own expansion off (so --image {photo} arrives as a name, not as str(photo)).
_TEXT_OPTIONS = (
    "model", "size", "quality", "format", "background", "style", "response_format",
    "moderation", "out", "fidelity",
)  # fmt: skip
_LIST_OPTIONS = ("param", "tag")


def edit_fields(
    args: argparse.Namespace,
    namespace: Mapping[str, Any],
    history: HistoryLookup | None,
) -> dict[str, Any]:
    """``images`` / ``mask`` / ``input_fidelity`` for the cell's requests (``{}``: no edit)."""
    given = getattr(args, "image", None)
    images = list(given or [])
    mask = getattr(args, "mask", None)
    fidelity = getattr(args, "fidelity", None)
    if given is not None and not images:  # never a silent (billed) plain generation
        raise UsageError("--image resolved to no input image: an edit needs at least one")
    if not images:
        if mask is not None or fidelity is not None:
            which = "--mask" if mask is not None else "--fidelity"
            raise UsageError(f"{which} needs an input image: add --image SRC")
        return {}
    if fidelity is not None and fidelity not in FIDELITIES:
        raise UsageError(f"--fidelity takes low or high; got {fidelity!r}")
    fields: dict[str, Any] = {
        "images": [resolve_source(s, history=history, namespace=namespace) for s in images],
    }
    if mask is not None:
        fields["mask"] = resolve_source(mask, history=history, namespace=namespace)
    if fidelity is not None:
        fields["input_fidelity"] = fidelity
    return fields


def expand_option_braces(args: argparse.Namespace, namespace: Mapping[str, Any]) -> None:
    """Fill ``{name}`` in the options other than --image / --mask, in place (leniently, as
    IPython does: a name that is not defined is left as written)."""
    for name in _TEXT_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str) and "{" in value:
            setattr(args, name, _expand(value, namespace))
    for name in _LIST_OPTIONS:
        values = getattr(args, name, None)
        if values:
            setattr(args, name, [_expand(v, namespace) if "{" in v else v for v in values])


def _expand(text: str, namespace: Mapping[str, Any]) -> str:
    from cometnb._notebook.magic_args import interpolate

    try:
        return interpolate(text, namespace)
    except UsageError:
        return text
