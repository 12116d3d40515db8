"""Checks made before anything is sent: the request against the model registry, request text
(encodable, no API key), and edit inputs (images and mask).

* :func:`validate_request` walks :mod:`cometnb._core.model_registry`'s capability table.
* :func:`check_encodable` / :func:`check_no_key` — every string can be UTF-8 and none carries
  the key.
* :func:`validate_edit` — input images, the mask and the markup against the model's edit row
  (a mask is a PNG with alpha, the size of the first image, under 4 MB; markup, 2.6 only, is
  the same kind of layer and never comes with a mask).

Each raises :class:`ValidationError` naming the field, so nothing is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from cometnb._core.byte_limits import MB
from cometnb._core.edit_inputs import ImageInput
from cometnb._core.errors import ValidationError, redact
from cometnb._core.model_registry import (
    CAPABILITIES,
    EDIT_CAPABILITIES,
    FIDELITIES,
    KNOWN_MODELS,
    MODELS,
    OPTIONAL_FIELDS,
    EditCaps,
    ModelCaps,
    Requires,
    generic_size_problem,
    get_caps,
    get_edit_caps,
)
from cometnb._core.secret import Secret
from cometnb._core.text import clip

__all__ = [
    "check_encodable",
    "check_no_key",
    "check_stored",
    "first_unencodable",
    "strings_in",
    "validate_edit",
    "validate_request",
]


# --- request checks ---------------------------------------------------------------------------

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


def _frame_ms(name: str, value: Any) -> str | None:
    # The API rounds to 10 ms (API_FACTS §10); refusing says so rather than send another value.
    if isinstance(value, bool) or not isinstance(value, int) or value < 20:
        return f"{name} must be an integer of at least 20 (milliseconds); got {_repr(value)}"
    if value % 10:
        low = value - value % 10
        return (
            f"{name} must be a multiple of 10 ms (the API rounds to 10); got {value}: "
            f"use {max(20, low)} or {low + 10}"
        )
    return None


_GENERIC: dict[str, Callable[[str, Any], str | None]] = {
    "n": _int_in(1, 10),
    "frame_count": _int_in(2, 16),
    "frame_duration_ms": _frame_ms,
    "size": _size_syntax,
    "output_compression": _int_in(0, 100),
    "partial_images": _int_in(0, 3),
    "stream": _is_bool,
    "watermark": _is_bool,
}


# Type checks that hold for every known model (the fact sheet types them as strings).
_KNOWN_TYPES: dict[str, Callable[[str, Any], str | None]] = {"user": _is_str}


def validate_request(prompt: Any, model: Any, fields: Mapping[str, Any]) -> None:
    """Raise :class:`ValidationError` for the first thing ``model`` cannot take; else return.

    ``fields`` holds the optional API fields (not ``prompt``/``model``); ``None`` values are
    ignored, as :class:`~cometnb._core.generations.ImageRequest` drops them.

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


# --- request text checks ----------------------------------------------------------------------


def first_unencodable(text: str) -> int | None:
    """The index of the first character UTF-8 cannot encode (a lone surrogate), or ``None``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def strings_in(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(path, text)`` for every string inside a JSON-like value (keys included)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                yield f"{path} (a key)", key
            yield from strings_in(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{path}[{index}]")


def _field_of(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0].split(" ", 1)[0]


def check_encodable(body: Mapping[str, Any]) -> None:
    """Refuse a body holding text that cannot be sent (lone surrogates); name where it is."""
    for path, text in strings_in(body, ""):
        position = first_unencodable(text)
        if position is None:
            continue
        code = f"U+{ord(text[position]):04X}"
        raise ValidationError(
            f"{path} has a character that cannot be sent ({code}, a lone surrogate) at "
            f"position {position}; only valid Unicode text is allowed. Nothing was sent.",
            field=_field_of(path),
            hint="Retype or re-paste that part of the text.",
        )


def check_no_key(body: Mapping[str, Any], key: Secret | None) -> None:
    """Refuse a body that contains the API key in any of its strings."""
    if key is None or not key.realistic:
        return
    for path, text in strings_in(body, ""):
        if key.found_in(text):
            raise ValidationError(
                f"{path} contains your API key; a request carrying it would send the key to "
                "the server and store it in the history, so nothing was sent.",
                field=_field_of(path),
                hint="Remove the key from the prompt or field (check any {variable} it uses).",
            )


def check_text(body: Mapping[str, Any], key: Secret | None = None) -> None:
    """Both checks (``ImageRequest.validate``) against ``key``, or, when none is given, the key
    resolved as a request would be (a cell hands over the one it resolved: looked up once)."""
    from cometnb._core.settings import resolve_key

    check_encodable(body)
    check_no_key(body, key if key is not None else resolve_key())


def check_stored(tags: Any, origin: str | None, key: Secret | None) -> tuple[str, ...]:
    """The tags (and origin) a request's record will store, checked before it is sent: text
    the history could not write (a lone surrogate) would fail only after billing."""
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
        raise ValidationError(
            f"tags must be a list of strings; got {tags!r:.80}. Nothing was sent.", field="tags"
        )
    stored: dict[str, Any] = {"tags": list(tags)}
    if origin is not None:
        stored["origin"] = origin
    check_encodable(stored)
    check_no_key(stored, key)
    return tuple(tags)


# --- edit input checks ------------------------------------------------------------------------


def validate_edit(
    model: str,
    images: Sequence[ImageInput],
    mask: ImageInput | None,
    fields: Mapping[str, Any],
    *,
    markup: ImageInput | None = None,
) -> None:
    """Raise :class:`ValidationError` for the first input rule ``model`` breaks; else return.

    Also refuses ``input_fidelity``, a mask and markup without input images (they apply to
    edits only), and markup together with a mask (API_FACTS §10).

    Example::

        >>> validate_edit("gpt-image-2", [], None, {"input_fidelity": "high"})
        Traceback (most recent call last):
        ...
        cometnb._core.errors.ValidationError: input_fidelity applies to edits (input images) only
    """
    fidelity = fields.get("input_fidelity")
    if not images:  # not an edit: the model's edit rules do not apply
        if fidelity is not None:
            _fail("input_fidelity applies to edits (input images) only", "input_fidelity")
        if mask is not None:
            _fail("a mask needs an input image to apply to (image=...)", "mask")
        if markup is not None:
            _fail("markup needs an input image to apply to (image=...)", "markup")
        return
    caps = get_edit_caps(model)
    if mask is not None and markup is not None:
        _fail(
            "markup cannot be combined with a mask; send the markup (annotations) or the mask "
            "(the region to edit), not both",
            "markup",
        )
    if caps is not None:
        _check_caps(caps, images, mask)
        if markup is not None and not caps.markup:
            takers = _markup_takers()
            _fail(f"markup applies to {takers} only; {model} does not accept it", "markup")
    if fidelity is not None:
        _check_fidelity(model, caps, fidelity)
    if mask is not None:
        if fields.get("output_format") == "gif":  # API_FACTS §10: a GIF takes no mask
            _fail("output_format=gif takes no mask; drop the mask or use png", "mask")
        limit = caps.mask_max_bytes if caps is not None else 4 * MB
        _check_layer("mask", images[0], mask, limit)
    if markup is not None:
        _check_layer("markup", images[0], markup, None)


def _check_caps(caps: EditCaps, images: Sequence[ImageInput], mask: ImageInput | None) -> None:
    if not caps.can_edit:
        _fail(
            f"{caps.name} cannot take input images; models that can: {_editors()}",
            "image",
        )
    if caps.max_images is not None and len(images) > caps.max_images:
        most = (
            "one input image" if caps.max_images == 1 else f"at most {caps.max_images} input images"
        )
        _fail(f"{caps.name} takes {most}; got {len(images)}", "image")
    for position, img in enumerate(images):
        _check_image(caps, position, img)
    if mask is not None and not caps.mask:
        _fail(f"{caps.name} takes no mask; send the images without one", "mask")


def _check_image(caps: EditCaps, position: int, img: ImageInput) -> None:
    which = f"image {position + 1} ({img.label})"
    if img.format not in caps.formats:
        allowed = _alternatives([f.upper() for f in caps.formats])
        _fail(
            f"{caps.name} takes {allowed} input images; {which} is {img.format.upper()}",
            "image",
        )
    limit = caps.max_image_bytes
    if limit is not None and img.size_bytes >= limit:
        _fail(
            f"{caps.name} takes input images under {_mb(limit)}; "
            f"{which} is {_actual(img.size_bytes)}",
            "image",
        )
    if caps.square and img.width != img.height:
        _fail(
            f"{caps.name} needs a square PNG; {which} is {img.width}x{img.height}",
            "image",
        )


def _check_fidelity(model: str, caps: EditCaps | None, value: Any) -> None:
    if caps is not None and not caps.fidelity:
        takers = _alternatives(
            sorted(c.name for c in EDIT_CAPABILITIES.values() if c.fidelity), "and"
        )
        _fail(
            f"input_fidelity applies to {takers} only; {model} does not accept it", "input_fidelity"
        )
    if value not in FIDELITIES:
        _fail(f"input_fidelity must be high or low; got {value!r}", "input_fidelity")


# What each layer over the first image is for (named in the alpha-channel refusal).
_LAYER_HELP = {
    "mask": "transparent pixels mark where to edit); it has none. cometnb.mask(image, box=...) "
    "makes one",
    "markup": "the annotations drawn on a transparent background); it has none. Draw them on a "
    "transparent PNG the size of the first image",
}


def _check_layer(role: str, first: ImageInput, layer: ImageInput, limit: int | None) -> None:
    """A mask or markup: a PNG with alpha, the first image's size, under ``limit`` bytes."""
    name = f"the {role} ({layer.label})"
    if layer.format != "png":
        _fail(f"{name} must be a PNG; it is {layer.format.upper()}", role)
    if not layer.has_alpha:
        _fail(f"{name} must have an alpha channel ({_LAYER_HELP[role]}", role)
    if (layer.width, layer.height) != (first.width, first.height):
        _fail(
            f"{name} must be the same size as the first image ({first.width}x{first.height}); "
            f"it is {layer.width}x{layer.height}",
            role,
        )
    if limit is not None and layer.size_bytes >= limit:
        _fail(f"{name} must be under {_mb(limit)}; it is {_actual(layer.size_bytes)}", role)


def _markup_takers() -> str:
    takers = [m.id for m in MODELS.values() if m.listed and m.edit.markup]
    return _alternatives(takers, "and") if takers else "no known model"


def _editors() -> str:
    names = [
        m.id
        for m in MODELS.values()
        if m.listed or m.generation is None
        if m.edit.can_edit and m.edit.route == "multipart" and m.edit.max_images
    ]
    return ", ".join(names) + " and the doubao-seedream models"


def _mb(n: int) -> str:
    value = n / MB
    return f"{value:.0f} MB" if value >= 10 or value.is_integer() else f"{value:.1f} MB"


def _actual(n: int) -> str:
    return f"{n / MB:.1f} MB ({n:,} bytes)"
