"""The one generic checker that refuses, before any I/O, a request a model cannot take.

:func:`validate_request` walks the capability table (:mod:`cometnb._core.capabilities`); it
holds no model-specific branches. Unknown model names pass with the generic checks only,
because CometAPI adds models often. Every message names the field, what was given and what is
allowed, and never shows a secret (values are redacted before they are clipped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from cometnb._core.capabilities import (
    CAPABILITIES,
    KNOWN_MODELS,
    OPTIONAL_FIELDS,
    ModelCaps,
    Requires,
    get_caps,
)
from cometnb._core.errors import ValidationError, redact
from cometnb._core.size_rules import generic_size_problem
from cometnb._core.text import clip

__all__ = ["validate_request"]


# --- generic checks (every model, known or not) ----------------------------------------------

_SIZE_RE = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")


def _int_in(low: int, high: int) -> Callable[[str, Any], str | None]:
    def check(name: str, value: Any) -> str | None:
        # bool is an int subclass; True must not pass as n=1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{name} must be an integer from {low} to {high}; got {_repr(value)}"
        return None

    return check


def _is_bool(name: str, value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"{name} must be true or false; got {_repr(value)}"
    return None


def _is_str(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{name} must be a string; got {_repr(value)}"
    return None


def _size_syntax(name: str, value: Any) -> str | None:
    if value == "auto":
        return None
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return f"{name} must be auto or WIDTHxHEIGHT such as 1024x1024; got {_repr(value)}"
    # Unknown models pass through, but not with a size no image model can make.
    return generic_size_problem(int(match.group(1)), int(match.group(2)))


_GENERIC: dict[str, Callable[[str, Any], str | None]] = {
    "n": _int_in(1, 10),
    "size": _size_syntax,
    "output_compression": _int_in(0, 100),
    "partial_images": _int_in(0, 3),
    "stream": _is_bool,
    "watermark": _is_bool,
}
# Type checks that hold for every known model (the fact sheet types them as strings).
_KNOWN_TYPES: dict[str, Callable[[str, Any], str | None]] = {"user": _is_str}


# --- the checker -----------------------------------------------------------------------------


def validate_request(prompt: Any, model: Any, fields: Mapping[str, Any]) -> None:
    """Raise :class:`ValidationError` for the first thing ``model`` cannot take; else return.

    ``fields`` holds the optional API fields (not ``prompt``/``model``); ``None`` values are
    ignored, as :class:`~cometnb._core.models.ImageRequest` drops them.

    Example::

        >>> validate_request("a cat", "qwen-image", {"n": 2})
        Traceback (most recent call last):
        ...
        cometnb._core.errors.ValidationError: qwen-image accepts n=1 only; got n=2
    """
    if not isinstance(model, str) or not model.strip():
        raise ValidationError(
            f"model must be a non-empty string; got {_repr(model)}", field="model"
        )
    caps = get_caps(model)
    present = {k: v for k, v in fields.items() if v is not None}
    _check_prompt(prompt, caps)
    for name in _ordered(present):
        _check_field(name, present[name], caps)
    if caps is not None:
        for rule in caps.requires:
            _check_requires(rule, present, caps)


def _ordered(present: Mapping[str, Any]) -> list[str]:
    known = [f for f in OPTIONAL_FIELDS if f in present]
    return known + [f for f in present if f not in OPTIONAL_FIELDS]


def _fail(message: str, name: str) -> NoReturn:
    raise ValidationError(message, field=name)


def _check_prompt(prompt: Any, caps: ModelCaps | None) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        _fail(f"prompt must be a non-empty string; got {_repr(prompt)}", "prompt")
    limit = caps.max_prompt_chars if caps else None
    if caps and limit is not None and len(prompt) > limit:
        _fail(
            f"{caps.name} accepts a prompt of at most {limit:,} characters; got {len(prompt):,}",
            "prompt",
        )


def _check_field(name: str, value: Any, caps: ModelCaps | None) -> None:
    if caps is not None and name in OPTIONAL_FIELDS and name not in caps.fields:
        _fail(f"{name} applies to {_who_accepts(name)} only; {caps.name} does not accept it", name)
    if name == "size" and caps is not None and value in caps.size_presets:
        return  # a named size (seedream's 2K) is not WxH
    allowed = caps.choices(name) if caps is not None and caps.verified(name) else ()
    if caps is not None and allowed:
        # A closed list says more than a syntax check: show the list even for 'big' or 5.
        if value not in allowed:
            _fail(f"{caps.name} accepts {name} {_one_of(allowed)}; got {_show(value)}", name)
        return
    generic = _GENERIC.get(name) or (_KNOWN_TYPES.get(name) if caps else None)
    problem = generic(name, value) if generic else _json_problem(name, value)
    if problem:
        _fail(problem, name)
    if caps is not None and caps.verified(name):
        _check_limits(name, value, caps)


def _check_limits(name: str, value: Any, caps: ModelCaps) -> None:
    """The model's rules beyond a closed list: its n limit and a flexible size rule."""
    if name == "n" and value > caps.max_n:
        allowed = "n=1 only" if caps.max_n == 1 else f"n from 1 to {caps.max_n}"
        _fail(f"{caps.name} accepts {allowed}; got n={value}", name)
    if name == "size" and caps.size_rule is not None and value != "auto":
        width, height = (int(side) for side in value.split("x"))
        problem = caps.size_rule.problem(width, height)
        if problem:
            _fail(f"{caps.name} size {value}: {problem}", name)


def _check_requires(rule: Requires, present: Mapping[str, Any], caps: ModelCaps) -> None:
    applies = caps.verified(rule.trigger) and caps.verified(rule.other)
    if rule.trigger not in present or not applies:
        return
    if rule.when is not None and present[rule.trigger] != rule.when:
        return
    actual = present.get(rule.other, rule.default)
    if actual in rule.allowed:
        return
    trigger = rule.trigger if rule.when is None else f"{rule.trigger}={_wire(rule.when)}"
    if len(rule.allowed) == 1:
        wanted = f"{rule.other}={_wire(rule.allowed[0])}"
    else:
        wanted = f"{rule.other} {_alternatives(tuple(_wire(a) for a in rule.allowed))}"
    note = " (the default)" if rule.other not in present else ""
    _fail(f"{trigger} needs {wanted}; got {rule.other}={_wire(actual)}{note}", rule.trigger)


def _who_accepts(name: str) -> str:
    """Describe the known models that verifiably take ``name``: whole families when they can."""
    groups: list[str] = []
    for family in dict.fromkeys(CAPABILITIES[m].family for m in KNOWN_MODELS):
        members = [CAPABILITIES[m] for m in KNOWN_MODELS if CAPABILITIES[m].family == family]
        takers = [c.name for c in members if c.verified(name)]
        if takers and len(takers) == len(members) > 1:
            groups.append(f"{family} models")
        else:
            groups.extend(takers)
    return _alternatives(tuple(groups), "and") if groups else "no known model"


def _json_problem(name: str, value: Any) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return (
            f"{name} must be a JSON value (string, number, bool, list or dict); got {_repr(value)}"
        )
    return None


def _one_of(values: Sequence[str]) -> str:
    """``a, b or c``; a single value reads ``a only``."""
    return f"{values[0]} only" if len(values) == 1 else _alternatives(values)


def _alternatives(values: Sequence[str], last: str = "or") -> str:
    if len(values) <= 1:
        return "".join(values)
    return f"{', '.join(values[:-1])} {last} {values[-1]}"


def _wire(value: Any) -> str:
    """A value as it appears in the JSON body (true/false, bare strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _show(value)


def _show(value: Any) -> str:
    """A short, readable form of a value in a list check: bare text for strings."""
    return _clip(value) if isinstance(value, str) and value.strip() else _repr(value)


def _repr(value: Any) -> str:
    """A short repr, for type errors: quotes make ``'2'`` distinguishable from ``2``."""
    return _clip(repr(value))


def _clip(text: str, limit: int = 60) -> str:
    # Redact before clipping: a key pasted into a field must not show even in part.
    return clip(redact(text), limit)
