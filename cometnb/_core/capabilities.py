"""What each model accepts, as data, and one generic checker that refuses a request before I/O.

Every fact of API_FACTS.md §1 lives in :data:`CAPABILITIES` (one :class:`ModelCaps` per model
name). :func:`validate_request` walks the table; it holds no model-specific branches. Where the
fact sheet says a value is *unverified*, the table lists the field in ``ModelCaps.unverified``
and the checker accepts any value (after the generic checks every model gets).

Unknown model names pass with the generic checks only, because CometAPI adds models often.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NoReturn

from cometnb._core.errors import ValidationError, redact
from cometnb._core.text import clip

__all__ = [
    "CAPABILITIES",
    "KNOWN_MODELS",
    "OPTIONAL_FIELDS",
    "FlexibleSize",
    "ModelCaps",
    "Requires",
    "get_caps",
    "validate_request",
]

Family = Literal["gpt-image", "dall-e", "qwen"]

# Every optional API field cometnb knows, in the order the checker reports problems.
# Any other field (``--param seed=5``) passes through with the JSON check only.
OPTIONAL_FIELDS: tuple[str, ...] = (
    "n",
    "size",
    "quality",
    "style",
    "response_format",
    "output_format",
    "output_compression",
    "background",
    "moderation",
    "stream",
    "partial_images",
    "user",
)

# Which ModelCaps attribute lists the allowed values of a field.
_CHOICES_ATTR: dict[str, str] = {
    "quality": "qualities",
    "style": "styles",
    "response_format": "response_formats",
    "output_format": "output_formats",
    "background": "backgrounds",
    "moderation": "moderations",
}


@dataclass(frozen=True)
class FlexibleSize:
    """The gpt-image-2 rule: any ``WxH`` within these bounds (plus ``auto``).

    Example::

        >>> FlexibleSize().problem(1000, 1000)
        'both sides must be multiples of 16'
    """

    step: int = 16
    max_aspect: float = 3.0  # long side / short side
    max_edge: int = 3840
    max_pixels: int = 8_294_400  # 3840x2160
    # A minimum of 655,360 pixels is reported only by third parties (unverified): not enforced.

    def problem(self, width: int, height: int) -> str | None:
        """Why ``width``x``height`` breaks the rule, or ``None`` if it is allowed."""
        long, short = max(width, height), min(width, height)
        if width % self.step or height % self.step:
            return f"both sides must be multiples of {self.step}"
        if long > self.max_aspect * short:
            ratio = f"{_num(self.max_aspect)}"
            return f"the aspect ratio must be between 1:{ratio} and {ratio}:1"
        if long > self.max_edge:
            return f"the long edge must be at most {self.max_edge} px"
        if width * height > self.max_pixels:
            return f"at most {self.max_pixels:,} pixels are allowed; it has {width * height:,}"
        return None


@dataclass(frozen=True)
class Requires:
    """A cross-field rule: when ``trigger`` is set (to ``when`` if given), ``other`` must be
    one of ``allowed``; ``default`` is what the API assumes when ``other`` is absent.

    Example::

        >>> Requires("partial_images", None, "stream", (True,), False).trigger
        'partial_images'
    """

    trigger: str
    when: Any
    other: str
    allowed: tuple[Any, ...]
    default: Any


@dataclass(frozen=True)
class ModelCaps:
    """What one model accepts. Empty value lists mean "no list known" (only for unverified fields).

    ``fields`` holds every optional API field the model takes (``prompt`` and ``model`` are
    always sent). ``unverified`` is the subset whose support or values the fact sheet could not
    confirm: any value passes the generic checks. ``sizes`` is the fixed list, or for a
    ``flexible_size`` model the presets a UI should offer.

    Example::

        >>> caps = get_caps("dall-e-3")
        >>> caps.sizes, caps.max_n, "style" in caps.fields
        (('1024x1024', '1792x1024', '1024x1792'), 1, True)
    """

    name: str
    family: Family
    sizes: tuple[str, ...] = ()
    size_rule: FlexibleSize | None = None
    max_n: int = 10
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    response_formats: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    moderations: tuple[str, ...] = ()
    max_prompt_chars: int | None = None
    streaming: bool = False
    fields: frozenset[str] = frozenset()
    unverified: frozenset[str] = frozenset()
    requires: tuple[Requires, ...] = ()

    @property
    def flexible_size(self) -> bool:
        """True when any ``WxH`` within :attr:`size_rule` is allowed (gpt-image-2)."""
        return self.size_rule is not None

    def choices(self, name: str) -> tuple[str, ...]:
        """The closed list of values allowed for ``name`` (``()`` when there is none).

        ``size`` has one unless the size is flexible; a flexible model's ``sizes`` are presets.
        """
        if name == "size":
            return () if self.flexible_size else self.sizes
        attr = _CHOICES_ATTR.get(name)
        return tuple(getattr(self, attr)) if attr else ()

    def verified(self, name: str) -> bool:
        """True when the model is known to accept ``name`` with the values in the table."""
        return name in self.fields and name not in self.unverified


# --- the table -------------------------------------------------------------------------------

_GPT_FIELDS = frozenset(
    {
        "n",
        "size",
        "quality",
        "output_format",
        "output_compression",
        "background",
        "moderation",
        "stream",
        "partial_images",
        "user",
    }
)
_GPT_REQUIRES = (
    Requires("background", "transparent", "output_format", ("png", "webp"), "png"),
    Requires("output_compression", None, "output_format", ("jpeg", "webp"), "png"),
    Requires("partial_images", None, "stream", (True,), False),
)
_STANDARD_GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")

_GPT_IMAGE = ModelCaps(
    name="gpt-image-1",
    family="gpt-image",
    sizes=_STANDARD_GPT_SIZES,
    qualities=("low", "medium", "high", "auto"),
    output_formats=("png", "jpeg", "webp"),
    backgrounds=("transparent", "opaque", "auto"),
    moderations=("low", "auto"),
    max_prompt_chars=32_000,
    streaming=True,
    fields=_GPT_FIELDS,
    requires=_GPT_REQUIRES,
)

_GPT_IMAGE_2 = replace(
    _GPT_IMAGE,
    name="gpt-image-2",
    # Presets for a UI; any WxH within the rule is accepted. Above 2560x1440 is experimental.
    sizes=(
        "1024x1024",
        "1536x1024",
        "1024x1536",
        "2048x2048",
        "2048x1152",
        "1152x2048",
        "2560x1440",
        "1440x2560",
        "3840x2160",
        "2160x3840",
        "auto",  # unverified for gpt-image-2: accepted
    ),
    size_rule=FlexibleSize(),
)

_DALL_E_2 = ModelCaps(
    name="dall-e-2",
    family="dall-e",
    sizes=("256x256", "512x512", "1024x1024"),
    qualities=("standard",),
    response_formats=("url", "b64_json"),
    max_prompt_chars=1_000,
    fields=frozenset({"n", "size", "quality", "response_format", "user"}),
)

_DALL_E_3 = replace(
    _DALL_E_2,
    name="dall-e-3",
    sizes=("1024x1024", "1792x1024", "1024x1792"),
    max_n=1,
    qualities=("standard", "hd"),
    styles=("vivid", "natural"),
    max_prompt_chars=4_000,
    fields=_DALL_E_2.fields | {"style"},
)

# CometAPI documents only n=1 for qwen-image; everything else is unverified, so accepted.
_QWEN_IMAGE = ModelCaps(
    name="qwen-image",
    family="qwen",
    max_n=1,
    fields=frozenset(OPTIONAL_FIELDS),
    unverified=frozenset(OPTIONAL_FIELDS) - {"n", "user"},
)

_TABLE: tuple[ModelCaps, ...] = (
    _GPT_IMAGE_2,
    replace(_GPT_IMAGE, name="gpt-image-1.5"),
    _GPT_IMAGE,
    replace(_GPT_IMAGE, name="gpt-image-1-mini"),
    _DALL_E_3,
    _DALL_E_2,
    _QWEN_IMAGE,
)

# Aliases in the SDK's model list. The dated snapshot is gpt-image-2. Which model
# chatgpt-image-latest points at is not documented, so its size rule is unverified (accepted).
_ALIASES: tuple[ModelCaps, ...] = (
    replace(_GPT_IMAGE_2, name="gpt-image-2-2026-04-21"),
    replace(_GPT_IMAGE, name="chatgpt-image-latest", unverified=frozenset({"size"})),
)

KNOWN_MODELS: tuple[str, ...] = tuple(c.name for c in _TABLE)
CAPABILITIES: dict[str, ModelCaps] = {c.name: c for c in (*_TABLE, *_ALIASES)}


def get_caps(model: str) -> ModelCaps | None:
    """The capabilities of ``model``, or ``None`` for an unknown model (generic checks only)."""
    return CAPABILITIES.get(model)


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
    if value == "auto" or (isinstance(value, str) and _SIZE_RE.fullmatch(value)):
        return None
    return f"{name} must be auto or WIDTHxHEIGHT such as 1024x1024; got {_repr(value)}"


_GENERIC: dict[str, Callable[[str, Any], str | None]] = {
    "n": _int_in(1, 10),
    "size": _size_syntax,
    "output_compression": _int_in(0, 100),
    "partial_images": _int_in(0, 3),
    "stream": _is_bool,
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


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
