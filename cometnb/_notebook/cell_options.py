"""The ``%%cometimg`` cell's options: parsed into a :class:`CellSpec` (no I/O), the edit options
(``--image``/``--mask``/``--fidelity``) and the magics' help.

Parsing is kept apart from running (as in JupySQL) so every rule here is testable without a
kernel: prompt interpolation, comma lists that build a grid, ``--param`` pass-through and the
option conflicts that would otherwise silently drop a value. Problems raise IPython's
``UsageError``, which IPython shows as one line without a traceback.

Edit options: ``%%cometimg --image SRC [--image SRC…] [--mask SRC | --markup SRC]
[--fidelity low|high]``.

Each SRC is what :func:`cometnb._core.edit_inputs.resolve_source` takes as text: a file path,
``@ID``, ``@ID:K``, ``@-1``, or ``{name}`` naming a notebook value (bytes, a PIL image, a Path,
a ``GeneratedImage``, a ``Generation`` or a ``Record``). Sources are resolved once per cell, so
a grid over prompts, models or qualities sends the same inputs in every cell.

Help for the magics: plain ``%%cometimg?`` help, typo hints, ``%config`` additions.

IPython's ``magic_arguments`` writes a magic's help as reStructuredText with a ``%name`` usage
line, so ``%%cometimg?`` showed ``::`` blocks and ``%cometimg``. :func:`plain_help` rebuilds the
text with a plain formatter and the right ``%%`` prefix. :func:`with_option_hint` adds
"Did you mean --quality?" to argparse's "unrecognized arguments: --qualty".
"""

from __future__ import annotations

import argparse
import builtins
import inspect
import json
import keyword
import math
import re
import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from textwrap import dedent
from typing import Any

from IPython.core.error import UsageError

from cometnb._client.runner import AXIS_FIELDS
from cometnb._core.edit_inputs import HistoryLookup, resolve_source
from cometnb._core.generations import ImageRequest
from cometnb._core.model_registry import FIDELITIES
from cometnb._core.settings import Settings
from cometnb._core.text import suggest_option

__all__ = [
    "CellSpec",
    "build_spec",
    "edit_fields",
    "expand_option_braces",
    "interpolate",
    "known_flags",
    "parse_params",
    "parse_with_hints",
    "plain_help",
    "split_list",
    "with_option_hint",
]


# Single-valued options → API field, for conflict checks against ``--param``.
_SCALAR_FIELDS: dict[str, str] = {
    "n": "n",
    "compression": "output_compression",
    "style": "style",
    "response_format": "response_format",
    "moderation": "moderation",
    "complexity": "complexity",
    "frames": "frame_count",
    "frame_ms": "frame_duration_ms",
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

    ``inputs`` holds an edit's resolved ``images`` / ``mask`` / ``markup`` / ``input_fidelity``
    (:func:`edit_fields`): every request of the grid shares them.
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


# Options whose {name} is filled in from the namespace, as IPython would have done before the
# magic turned its own expansion off (so --image {photo} arrives as a name, not as str(photo)).
_TEXT_OPTIONS = (
    "model", "size", "quality", "format", "background", "style", "response_format",
    "moderation", "complexity", "out", "fidelity",
)  # fmt: skip
_LIST_OPTIONS = ("param", "tag")


def edit_fields(
    args: argparse.Namespace,
    namespace: Mapping[str, Any],
    history: HistoryLookup | None,
) -> dict[str, Any]:
    """``images`` / ``mask`` / ``markup`` / ``input_fidelity`` for the cell's requests (``{}``:
    no edit). A mask and markup are checked against the first image by the request's own
    validation (``validate_edit``), like everything else the model decides."""
    given = getattr(args, "image", None)
    images = list(given or [])
    layers = {name: getattr(args, name, None) for name in ("mask", "markup")}
    fidelity = getattr(args, "fidelity", None)
    if given is not None and not images:  # never a silent (billed) plain generation
        raise UsageError("--image resolved to no input image: an edit needs at least one")
    if not images:
        named = [f"--{n}" for n, v in {**layers, "fidelity": fidelity}.items() if v is not None]
        if named:
            raise UsageError(f"{named[0]} needs an input image: add --image SRC")
        return {}
    if fidelity is not None and fidelity not in FIDELITIES:
        raise UsageError(f"--fidelity takes low or high; got {fidelity!r}")
    fields: dict[str, Any] = {
        "images": [resolve_source(s, history=history, namespace=namespace) for s in images],
    }
    for name, source in layers.items():
        if source is not None:
            fields[name] = resolve_source(source, history=history, namespace=namespace)
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
    try:
        return interpolate(text, namespace)
    except UsageError:
        return text


class _PlainFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout with a dedented description (docstrings are indented)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(dedent(text), width, indent)


def plain_help(func: Any, prog: str, description: str) -> str:
    """The help of a ``magic_arguments`` magic as plain text, its usage line naming ``prog``.

    Example::

        >>> from cometnb._notebook.magics import CometImg
        >>> plain_help(CometImg.cometimg, "%%cometimg", "Generate.").splitlines()[0][:25]
        'usage: %%cometimg [-m MOD'
    """
    source: argparse.ArgumentParser = func.parser
    # A docstring: first line flush, the rest indented; ``literal`` is RST markup.
    text = re.sub(r"``(.+?)``", r"\1", inspect.cleandoc(description))
    parser = argparse.ArgumentParser(
        prog=prog, description=text, formatter_class=_PlainFormatter, add_help=False
    )
    for action in source._actions:
        parser._add_action(action)
    return parser.format_help()


def known_flags(func: Any) -> list[str]:
    """Every option string a ``magic_arguments`` magic accepts (``-m``, ``--model``, ...)."""
    parser: argparse.ArgumentParser = func.parser
    return [flag for action in parser._actions for flag in action.option_strings]


def with_option_hint(message: str, line: str, flags: list[str]) -> str:
    """``message`` plus "Did you mean --x?" for each mistyped ``--option`` in ``line``.

    Example::

        >>> with_option_hint("unrecognized arguments: --qualty low", "--qualty low",
        ...                  ["--quality", "--size"])
        'unrecognized arguments: --qualty low. Did you mean --quality?'
    """
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    hints: list[tuple[str, str]] = []
    for word in words:
        name = word.split("=", 1)[0]
        if not re.fullmatch(r"--[\w-]+", name) or name in flags:
            continue
        best = suggest_option(name, flags)
        if best:
            hints.append((name, best))
    if not hints:
        return message
    if len(hints) == 1:
        hint = f"Did you mean {hints[0][1]}?"
    else:
        hint = "Did you mean " + ", ".join(f"{best} for {name}" for name, best in hints) + "?"
    return f"{message.rstrip('.')}. {hint}"


def parse_with_hints(func: Any, line: str, argv: list[str] | None = None) -> Any:
    """``magic_arguments.parse_argstring`` (or ``parse_args(argv)`` for a line already split)
    with typo hints added to its ``UsageError``."""
    try:
        return func.parser.parse_argstring(line) if argv is None else func.parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(with_option_hint(str(exc), line, known_flags(func))) from None
