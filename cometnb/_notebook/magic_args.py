"""Turn the options and body of a ``%%cometimg`` cell into a :class:`CellSpec` (no I/O).

Parsing is kept apart from running (as in JupySQL) so every rule here is testable without a
kernel: prompt interpolation, comma lists that build a grid, ``--param`` pass-through and the
option conflicts that would otherwise silently drop a value. Problems raise IPython's
``UsageError``, which IPython shows as one line without a traceback.
"""

from __future__ import annotations

import argparse
import builtins
import json
import keyword
import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from cometnb._client.runner import AXIS_FIELDS
from cometnb._core.generations import ImageRequest
from cometnb._core.settings import Settings

__all__ = [
    "CellSpec",
    "build_spec",
    "interpolate",
    "parse_params",
    "split_list",
]

# Single-valued options → API field, for conflict checks against ``--param``.
_SCALAR_FIELDS: dict[str, str] = {
    "n": "n",
    "compression": "output_compression",
    "style": "style",
    "response_format": "response_format",
    "moderation": "moderation",
}

# What to use instead of ``--param KEY=…`` for fields that have their own place.
_RESERVED_PARAMS: dict[str, str] = {
    "prompt": "the cell body",
    "model": "-m/--model",
    "api_key": "%cometimg_key (a key is never a cell option)",
    "key": "%cometimg_key (a key is never a cell option)",
}

_BRACES_HINT = "Write {{ and }} for literal braces."


@dataclass(frozen=True)
class CellSpec:
    """What one ``%%cometimg`` cell asks for (the parsed cell, before it becomes a grid).

    ``base`` holds every field shared by all requests (including single-valued axes);
    ``axes`` maps each axis that varies to its values (empty for a single request).

    Example::

        >>> spec = CellSpec(ImageRequest("a cat"), {"size": ["1024x1024", "1536x1024"]})
        >>> spec.is_grid, spec.count
        (True, 2)
    """

    base: ImageRequest
    axes: dict[str, list[Any]]
    tags: tuple[str, ...] = ()
    out: str | None = None
    dry_run: bool = False
    display: bool = True
    batch: str | None = None  # run as this resumable batch (cometnb.batch)
    budget: float | None = None  # --budget USD: this cell's cap
    yes: bool = False  # --yes: send even above CometImg.confirm_above

    @property
    def is_grid(self) -> bool:
        return bool(self.axes)

    @property
    def count(self) -> int:
        total = 1
        for values in self.axes.values():
            total *= len(values)
        return total


def split_list(value: str | None, option: str) -> list[str]:
    """``"a, b,a"`` → ``["a", "b"]`` (order kept, duplicates dropped); ``None`` → ``[]``."""
    if value is None:
        return []
    items = [part.strip() for part in value.split(",")]
    items = list(dict.fromkeys(item for item in items if item))
    if not items:
        raise UsageError(f"{option} needs a value, e.g. {option} {_EXAMPLES.get(option, 'x')}")
    return items


_EXAMPLES = {"--model": "gpt-image-2", "--size": "1024x1024", "--quality": "high"}


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``["seed=5", "user=ann"]`` → ``{"seed": 5, "user": "ann"}`` (JSON when it parses)."""
    params: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param needs KEY=VALUE; got {item!r}")
        if key in _RESERVED_PARAMS:
            raise UsageError(f"--param {key}=… is not allowed: use {_RESERVED_PARAMS[key]}")
        if key in params:
            raise UsageError(f"--param {key} is given twice")
        params[key] = _json_or_text(raw)
    return params


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class _PromptFormatter(string.Formatter):
    """``str.format`` over the user namespace: named fields only, clear errors."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self._namespace = namespace

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            raise UsageError(
                "the prompt has an empty or numbered {} field; use {name} for a variable. "
                + _BRACES_HINT
            )
        if key not in self._namespace:
            raise UsageError(
                f"name {key!r} is not defined (the prompt uses {{{key}}}). "
                f"Define it in a cell above. {_BRACES_HINT}"
            )
        return self._namespace[key]


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` (also ``{obj.attr}``, ``{d[key]}``) from ``namespace``.

    >>> interpolate("a {animal} in {{braces}}", {"animal": "fox"})
    'a fox in {braces}'
    """
    try:
        return _PromptFormatter(namespace).vformat(template, (), {})
    except UsageError:
        raise
    except (AttributeError, LookupError) as exc:
        raise UsageError(f"the prompt could not be filled in: {exc!s}. {_BRACES_HINT}") from None
    except ValueError as exc:
        raise UsageError(f"the prompt has a brace problem: {exc}. {_BRACES_HINT}") from None


def _prompts(cell: str, namespace: Mapping[str, Any], each_line: bool) -> list[str]:
    text = interpolate(cell, namespace)
    if each_line:
        prompts = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    else:
        prompts = [text.strip()] if text.strip() else []
    if not prompts:
        raise UsageError("the cell has no prompt: write it on the lines below %%cometimg")
    return prompts


def _axis_values(
    args: argparse.Namespace, settings: Settings, prompts: list[str], params: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """Every axis with its values (one value = shared by all requests; none = not sent).

    Size and quality defaults (``CometImg.size``/``.quality``) are added later, per request,
    only where the model takes them (``ImageRequest.with_session_defaults``).
    """
    given = {
        "model": split_list(args.model, "--model"),
        "size": split_list(args.size, "--size"),
        "quality": split_list(args.quality, "--quality"),
        "format": split_list(args.format, "--format"),
        "background": split_list(args.background, "--background"),
    }
    for axis, values in given.items():
        if values and AXIS_FIELDS[axis] in params:
            raise UsageError(f"--param {AXIS_FIELDS[axis]}=… repeats what --{axis} sets")
    given["model"] = given["model"] or [settings.model]
    return {"prompt": prompts, **given}


def _scalar_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = {api: getattr(args, opt) for opt, api in _SCALAR_FIELDS.items()}
    if args.partial is not None:
        fields.update(stream=True, partial_images=args.partial)
    return {k: v for k, v in fields.items() if v is not None}


# Names the session itself needs: binding a result to one breaks the notebook.
_RESERVED_OUT = frozenset({"In", "Out", "get_ipython", "exit", "quit", "display"})
_OUTPUT_CACHE = re.compile(r"_+|_i+|_[io]?\d+|_[iod]h")  # _, __, _i, _ii, _3, _i3, _oh, _dh


def _check_out_name(name: str | None) -> str | None:
    if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
        raise UsageError(f"-o/--out needs a Python variable name; got {name!r}")
    if name is not None and (
        name in _RESERVED_OUT
        or hasattr(builtins, name)
        or _OUTPUT_CACHE.fullmatch(name)
        or (name.startswith("__") and name.endswith("__"))
    ):
        raise UsageError(
            f"-o/--out {name} is a reserved name (a Python builtin or one IPython uses); "
            "choose another variable name, e.g. -o result"
        )
    return name


def _check_batch_name(name: str | None) -> str | None:
    if name is not None and not name.strip():
        raise UsageError("--batch needs a name, e.g. --batch catalogue")
    return name.strip() if name is not None else None


def build_spec(
    args: argparse.Namespace,
    cell: str,
    namespace: Mapping[str, Any],
    settings: Settings,
    inputs: Mapping[str, Any] | None = None,
) -> CellSpec:
    """Combine parsed options, the cell body and the defaults in ``settings`` into a spec.

    ``inputs`` holds an edit's resolved ``images`` / ``mask`` / ``input_fidelity``
    (``magic_edit.edit_fields``): every request of the grid shares them.
    """
    prompts = _prompts(cell or "", namespace, args.each_line)
    params = parse_params(args.param)
    values = _axis_values(args, settings, prompts, params)
    fields = _scalar_fields(args)
    clash = sorted(set(fields) & set(params))
    if clash:
        raise UsageError(f"--param {clash[0]}=… repeats what an option sets")
    shared = {AXIS_FIELDS[a]: v[0] for a, v in values.items() if len(v) == 1}
    # A varying axis is filled in per cell by the runner; the base carries its first value.
    shared.setdefault("prompt", prompts[0])
    shared.setdefault("model", values["model"][0])
    base = ImageRequest(**{**params, **fields, **(inputs or {}), **shared})
    tags = tuple(dict.fromkeys(t.strip() for t in args.tag or () if t.strip()))
    return CellSpec(
        base=base,
        axes={axis: v for axis, v in values.items() if len(v) > 1},
        tags=tags,
        out=_check_out_name(args.out),
        dry_run=args.dry_run,
        display=not args.no_display,
        batch=_check_batch_name(getattr(args, "batch", None)),
        budget=_check_budget(getattr(args, "budget", None)),
        yes=bool(getattr(args, "yes", False)),
    )


def _check_budget(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value >= 0):  # NaN, inf
        raise UsageError(f"--budget needs an amount of USD, 0 or more; got {value}")
    return value
