"""What each model accepts as input images, as data, and the checks that run before sending.

API_FACTS.md §7: GPT image models take up to 16 PNG / WebP / JPEG images under 50 MB each,
dall-e-2 one square PNG under 4 MB; a mask is a PNG with an alpha channel, the size of the first
image, under 4 MB; ``input_fidelity`` (high | low) only gpt-image-1 and gpt-image-1.5 take.
Seedream takes up to 14 references in the JSON body of ``/v1/images/generations`` (data URIs)
and no mask. :data:`EDIT_CAPABILITIES` holds one :class:`EditCaps` per model;
:func:`validate_edit` walks it with no model-specific branches. Unknown models get the generic
checks (every input must be a readable image) and go to ``/v1/images/edits``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NoReturn

from cometnb._core.errors import ValidationError
from cometnb._core.sources import ImageInput

__all__ = [
    "EDIT_CAPABILITIES",
    "FIDELITIES",
    "EditCaps",
    "edit_route",
    "get_edit_caps",
    "takes_fidelity",
    "validate_edit",
]

Route = Literal["multipart", "json"]
MB = 1024 * 1024
FIDELITIES = ("high", "low")


@dataclass(frozen=True)
class EditCaps:
    """How one model takes input images.

    ``route`` is ``"multipart"`` (``POST /v1/images/edits``) or ``"json"`` (references in the
    ``image`` array of a ``/v1/images/generations`` body). ``max_image_bytes`` and
    ``mask_max_bytes`` are exclusive limits; ``None`` means none is known (not enforced).

    Example::

        >>> caps = get_edit_caps("dall-e-2")
        >>> caps.max_images, caps.formats, caps.square
        (1, ('png',), True)
    """

    name: str
    route: Route = "multipart"
    max_images: int | None = 16
    formats: tuple[str, ...] = ("png", "webp", "jpeg")
    max_image_bytes: int | None = 50 * MB
    square: bool = False
    mask: bool = True
    mask_max_bytes: int | None = 4 * MB
    fidelity: bool = False
    can_edit: bool = True


_GPT = EditCaps("gpt-image-2")
_GPT_FIDELITY = replace(_GPT, name="gpt-image-1", fidelity=True)
_SEEDREAM = EditCaps(
    "doubao-seedream-4-0-250828",
    route="json",
    max_images=14,
    formats=("png", "jpeg", "webp"),
    max_image_bytes=None,  # upstream limits are not in the fact sheet: not enforced
    mask=False,
)
# Provider-specific (API_FACTS §7): limits unknown, so only the generic checks apply.
_PROVIDER = EditCaps("qwen-image-edit", max_images=None, max_image_bytes=None, mask_max_bytes=None)

_TABLE: tuple[EditCaps, ...] = (
    _GPT,
    replace(_GPT, name="gpt-image-2-2026-04-21"),
    replace(_GPT, name="chatgpt-image-latest"),
    replace(_GPT, name="gpt-image-1-mini"),
    _GPT_FIDELITY,
    replace(_GPT_FIDELITY, name="gpt-image-1.5"),
    EditCaps("dall-e-2", max_images=1, formats=("png",), max_image_bytes=4 * MB, square=True),
    EditCaps("dall-e-3", can_edit=False),
    EditCaps("qwen-image", can_edit=False),
    _PROVIDER,
    replace(_PROVIDER, name="doubao-seededit-3-0-i2i-250628", max_images=1, mask=False),
    _SEEDREAM,
    replace(_SEEDREAM, name="doubao-seedream-4-5-251128"),
    replace(_SEEDREAM, name="doubao-seedream-5-0-260128"),
)
EDIT_CAPABILITIES: dict[str, EditCaps] = {c.name: c for c in _TABLE}


def get_edit_caps(model: str) -> EditCaps | None:
    """How ``model`` takes input images; ``None`` for an unknown model (generic checks)."""
    return EDIT_CAPABILITIES.get(model)


def edit_route(model: str) -> Route:
    """``"json"`` for models that take references in the generations body, else multipart."""
    caps = get_edit_caps(model)
    return caps.route if caps is not None else "multipart"


def takes_fidelity(model: str) -> bool:
    """True when ``model`` accepts ``input_fidelity`` (a panel shows the control only then)."""
    caps = get_edit_caps(model)
    return bool(caps and caps.fidelity)


def validate_edit(
    model: str,
    images: Sequence[ImageInput],
    mask: ImageInput | None,
    fields: Mapping[str, Any],
) -> None:
    """Raise :class:`ValidationError` for the first input rule ``model`` breaks; else return.

    Also refuses ``input_fidelity`` and a mask without input images (they apply to edits only).

    Example::

        >>> validate_edit("gpt-image-2", [], None, {"input_fidelity": "high"})
        Traceback (most recent call last):
        ...
        cometnb._core.errors.ValidationError: input_fidelity applies to edits (input images) only
    """
    caps = get_edit_caps(model)
    fidelity = fields.get("input_fidelity")
    if not images:
        if fidelity is not None:
            _fail("input_fidelity applies to edits (input images) only", "input_fidelity")
        if mask is not None:
            _fail("a mask needs an input image to apply to (image=...)", "mask")
        return
    if caps is not None:
        _check_caps(caps, images, mask)
    if fidelity is not None:
        _check_fidelity(model, caps, fidelity)
    if mask is not None:
        _check_mask(model, caps, images[0], mask)


def _check_caps(caps: EditCaps, images: Sequence[ImageInput], mask: ImageInput | None) -> None:
    if not caps.can_edit:
        _fail(
            f"{caps.name} cannot take input images; models that can: {_editors()}",
            "image",
        )
    if caps.max_images is not None and len(images) > caps.max_images:
        most = "one input image" if caps.max_images == 1 else f"at most {caps.max_images}"
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
        takers = _alternatives([c.name for c in _TABLE if c.fidelity], "and")
        _fail(
            f"input_fidelity applies to {takers} only; {model} does not accept it", "input_fidelity"
        )
    if value not in FIDELITIES:
        _fail(f"input_fidelity must be high or low; got {value!r}", "input_fidelity")


def _check_mask(model: str, caps: EditCaps | None, first: ImageInput, mask: ImageInput) -> None:
    name = f"the mask ({mask.label})"
    if mask.format != "png":
        _fail(f"{name} must be a PNG; it is {mask.format.upper()}", "mask")
    if not mask.has_alpha:
        _fail(
            f"{name} must have an alpha channel (transparent pixels mark where to edit); "
            "it has none. cometnb.mask(image, box=...) makes one",
            "mask",
        )
    if (mask.width, mask.height) != (first.width, first.height):
        _fail(
            f"{name} must be the same size as the first image ({first.width}x{first.height}); "
            f"it is {mask.width}x{mask.height}",
            "mask",
        )
    limit = caps.mask_max_bytes if caps is not None else 4 * MB
    if limit is not None and mask.size_bytes >= limit:
        _fail(f"{name} must be under {_mb(limit)}; it is {_actual(mask.size_bytes)}", "mask")


def _editors() -> str:
    aliases = {"gpt-image-2-2026-04-21", "chatgpt-image-latest"}
    names = [
        c.name
        for c in _TABLE
        if c.can_edit and c.route == "multipart" and c.max_images and c.name not in aliases
    ]
    return ", ".join(names) + " and the doubao-seedream models"


def _fail(message: str, field: str) -> NoReturn:
    raise ValidationError(message, field=field)


def _mb(n: int) -> str:
    value = n / MB
    return f"{value:.0f} MB" if value >= 10 or value.is_integer() else f"{value:.1f} MB"


def _actual(n: int) -> str:
    return f"{n / MB:.1f} MB ({n:,} bytes)"


def _alternatives(values: Sequence[str], last: str = "or") -> str:
    if len(values) <= 1:
        return "".join(values)
    return f"{', '.join(values[:-1])} {last} {values[-1]}"
