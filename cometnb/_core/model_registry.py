"""The model registry: what each model accepts, how it takes input images, its sizes and its
lifecycle, as data.

* :data:`CAPABILITIES` — one :class:`ModelCaps` per model name (API_FACTS.md §1): sizes (a
  closed list, or gpt-image-2's :class:`FlexibleSize` rule), qualities, formats, ``n``, fields.
* :data:`EDIT_CAPABILITIES` — one :class:`EditCaps` per model (API_FACTS.md §7): the route
  (multipart ``/v1/images/edits`` or JSON references), image count, formats, byte limits, mask.
* Size rules beyond a closed list: gpt-image-2's pixel range and generic sanity limits.
* Lifecycle (API_FACTS.md §9): which models are retired or deprecated, and the one clear line
  shown when the API says a model is gone.

:func:`model_info` joins the rows of one model. Adding a model is one row in each table here
plus its prices in ``prices.json``; the checkers (:mod:`cometnb._core.validation`) walk these
tables with no model-specific branches.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from cometnb._core.byte_limits import MB
from cometnb._core.text import did_you_mean

__all__ = [
    "CAPABILITIES",
    "CHECKED_ON",
    "EDIT_CAPABILITIES",
    "FAMILY_RULE",
    "FIDELITIES",
    "GENERIC_MAX_EDGE",
    "KNOWN_MODELS",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "MODELS",
    "NO_INPUT_IMAGE",
    "OPTIONAL_FIELDS",
    "SHUTDOWN_DATES",
    "EditCaps",
    "FlexibleSize",
    "ModelCaps",
    "ModelInfo",
    "Requires",
    "assumed_note",
    "edit_route",
    "generic_size_problem",
    "get_caps",
    "get_edit_caps",
    "image_model_ids",
    "is_assumed",
    "is_model_gone",
    "model_gone_message",
    "model_info",
    "nearest_flexible_size",
    "offered_models",
    "pixel_problem",
    "retired_message",
    "retired_note",
    "takes_fidelity",
]


# --- size rules -------------------------------------------------------------------------------

MIN_PIXELS = 655_360


MAX_PIXELS = 8_294_400  # 3840x2160


STEP = 16


MAX_ASPECT = 3.0


MAX_EDGE = 3840


# No image model known to CometAPI produces more than 4096 px a side (seedream 4K presets,
# gpt-image-2 3840); 8192 leaves room for new models while refusing typos like 99999x99999.
GENERIC_MAX_EDGE = 8192


def _fits(width: int, height: int, rule: dict[str, float]) -> bool:
    long, short = max(width, height), min(width, height)
    step = int(rule["step"])
    return (
        width % step == 0
        and height % step == 0
        and short > 0
        and long <= rule["max_aspect"] * short
        and long <= rule["max_edge"]
        and rule["min_pixels"] <= width * height <= rule["max_pixels"]
    )


def nearest_flexible_size(
    width: int,
    height: int,
    *,
    step: int = STEP,
    max_aspect: float = MAX_ASPECT,
    max_edge: int = MAX_EDGE,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> str:
    """The ``WxH`` closest to ``width``x``height`` that gpt-image-2 accepts.

    Keeps the aspect ratio (clamped to 1:3..3:1), scales the area into the pixel range and
    rounds both sides to multiples of 16.

    Example::

        >>> nearest_flexible_size(512, 512), nearest_flexible_size(800, 600)
        ('816x816', '960x720')
    """
    rule = {
        "step": step,
        "max_aspect": max_aspect,
        "max_edge": max_edge,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
    }
    width, height = max(width, 1), max(height, 1)
    ratio = min(max(width / height, 1 / max_aspect), max_aspect)
    # The long edge stays within max_edge: w = sqrt(area * ratio), h = sqrt(area / ratio).
    edge_cap = max_edge * max_edge / ratio if ratio >= 1 else max_edge * max_edge * ratio
    area = min(max(width * height, min_pixels), max_pixels, edge_cap)
    ideal_h = math.sqrt(area / ratio)
    ideal_w = ideal_h * ratio
    best: tuple[float, int, int] | None = None
    base_w, base_h = int(ideal_w // step), int(ideal_h // step)
    for dw in range(-2, 3):
        for dh in range(-2, 3):
            w, h = (base_w + dw) * step, (base_h + dh) * step
            if w <= 0 or h <= 0 or not _fits(w, h, rule):
                continue
            score = abs(math.log((w / h) / ratio)) * 10 + abs(w * h - area) / area
            if best is None or score < best[0]:
                best = (score, w, h)
    return f"{best[1]}x{best[2]}" if best else "1024x1024"


def pixel_problem(
    width: int,
    height: int,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    nearest: str | None = None,
) -> str | None:
    """Why ``width``x``height`` is outside gpt-image-2's pixel range, or ``None``.

    Example::

        >>> pixel_problem(512, 512)
        'it has 262,144 pixels; allowed are 655,360 to 8,294,400 (nearest valid size: 816x816)'
    """
    pixels = width * height
    if min_pixels <= pixels <= max_pixels:
        return None
    nearest = nearest or nearest_flexible_size(width, height)
    return (
        f"it has {pixels:,} pixels; allowed are {min_pixels:,} to {max_pixels:,} "
        f"(nearest valid size: {nearest})"
    )


def generic_size_problem(width: int, height: int) -> str | None:
    """The sanity limit every model gets, known or not: each side at most 8,192 px.

    Example::

        >>> generic_size_problem(99999, 99999)
        'each side must be at most 8,192 px (no image model makes larger images); got 99999x99999'
    """
    if max(width, height) > GENERIC_MAX_EDGE:
        return (
            f"each side must be at most {GENERIC_MAX_EDGE:,} px (no image model makes larger "
            f"images); got {width}x{height}"
        )
    return None


# --- generation capabilities ------------------------------------------------------------------

Family = Literal["gpt-image", "dall-e", "qwen", "seedream"]


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
    "complexity",
    "frame_count",
    "frame_duration_ms",
    "stream",
    "partial_images",
    "user",
    "watermark",
    "sequential_image_generation",
    "sequential_image_generation_options",
)


# Which ModelCaps attribute lists the allowed values of a field.
_CHOICES_ATTR: dict[str, str] = {
    "quality": "qualities",
    "style": "styles",
    "response_format": "response_formats",
    "output_format": "output_formats",
    "background": "backgrounds",
    "moderation": "moderations",
    "complexity": "complexities",
}


@dataclass(frozen=True)
class FlexibleSize:
    """The gpt-image-2 rule: any ``WxH`` within these bounds (plus ``auto``).

    Example::

        >>> FlexibleSize().problem(1000, 1000)
        'both sides must be multiples of 16 (nearest valid size: 992x992)'
    """

    step: int = 16
    max_aspect: float = 3.0  # long side / short side
    max_edge: int = 3840
    max_pixels: int = 8_294_400  # 3840x2160
    # OpenAI's cookbook (image-gen-models-prompting-guide) and third parties: 655,360 minimum.
    min_pixels: int = 655_360

    def problem(self, width: int, height: int) -> str | None:
        """Why ``width``x``height`` breaks the rule, or ``None`` if it is allowed; the reason
        names the nearest size that follows every rule."""

        long, short = max(width, height), min(width, height)
        size = nearest_flexible_size(
            width,
            height,
            step=self.step,
            max_aspect=self.max_aspect,
            max_edge=self.max_edge,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )
        nearest = f" (nearest valid size: {size})"
        if width % self.step or height % self.step:
            return f"both sides must be multiples of {self.step}{nearest}"
        if long > self.max_aspect * short:
            ratio = f"{_num(self.max_aspect)}"
            return f"the aspect ratio must be between 1:{ratio} and {ratio}:1{nearest}"
        if long > self.max_edge:
            return f"the long edge must be at most {self.max_edge} px{nearest}"
        return pixel_problem(
            width, height, min_pixels=self.min_pixels, max_pixels=self.max_pixels, nearest=size
        )


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
    # Named sizes accepted besides WxH (seedream's 1K / 2K / 4K).
    size_presets: tuple[str, ...] = ()
    max_n: int = 10
    qualities: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    response_formats: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    moderations: tuple[str, ...] = ()
    complexities: tuple[str, ...] = ()
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
            # Flexible sizes and presets-or-WxH (seedream) have no closed list.
            return () if self.flexible_size or self.size_presets else self.sizes
        attr = _CHOICES_ATTR.get(name)
        return tuple(getattr(self, attr)) if attr else ()

    def verified(self, name: str) -> bool:
        """True when the model is known to accept ``name`` with the values in the table."""
        return name in self.fields and name not in self.unverified


# Every field but dall-e's style / response_format and seedream's own.
_GPT_FIELDS = frozenset(OPTIONAL_FIELDS) - {
    "complexity",
    "frame_count",
    "frame_duration_ms",
    "style",
    "response_format",
    "watermark",
    "sequential_image_generation",
    "sequential_image_generation_options",
}
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


# GPT Image 2.5 and 2.6 (API_FACTS §10): gpt-image-2's size rule and fields, two more qualities;
# 2.6 adds complexity and SVG / GIF output (kept byte-exact, previewed as rasters: _core/svg.py).
_GPT_IMAGE_25 = replace(
    _GPT_IMAGE_2,
    name="gpt-image-2.5-flare",
    qualities=("low", "medium", "high", "xhigh", "max", "auto"),
)


_GPT_IMAGE_26 = replace(
    _GPT_IMAGE_25,
    name="gpt-image-2.6-flare",
    complexities=("low", "medium", "high"),
    output_formats=("png", "jpeg", "webp", "gif", "svg"),
    fields=_GPT_FIELDS | {"complexity", "frame_count", "frame_duration_ms"},
    # SVG and GIF (API_FACTS §10): one SVG per request; neither streams; frames only for GIF.
    requires=(
        *_GPT_REQUIRES,
        Requires("output_format", "svg", "n", (1,), 1),
        Requires("output_format", "svg", "stream", (False,), False),
        Requires("output_format", "gif", "stream", (False,), False),
        Requires("frame_count", None, "output_format", ("gif",), "png"),
        Requires("frame_duration_ms", None, "output_format", ("gif",), "png"),
    ),
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


# ByteDance Seedream (API_FACTS §7): /v1/images/generations with JSON, size a preset or WxH,
# URL results by default, up to 14 references (the edit rows below have those rules).
_SEEDREAM = ModelCaps(
    name="doubao-seedream-4-0-250828",
    family="seedream",
    sizes=("1K", "2K", "4K", "2048x2048"),
    size_presets=("1K", "2K", "4K"),
    response_formats=("url", "b64_json"),
    fields=frozenset(
        {
            "size",
            "response_format",
            "watermark",
            "user",
            "sequential_image_generation",
            "sequential_image_generation_options",
        }
    ),
)


def get_caps(model: str) -> ModelCaps | None:
    """The capabilities of ``model``, or ``None`` for an unknown model (generic checks only)."""
    info = model_info(model)
    return info.generation if info is not None else None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# --- edit capabilities ------------------------------------------------------------------------

Route = Literal["multipart", "json"]


FIDELITIES = ("high", "low")


# Refused before the network: an edit with no input would go out as a billed plain generation.
NO_INPUT_IMAGE = (
    "an edit needs at least one input image; the image list is empty "
    "(give a file path, @-1, @ID, bytes, a PIL image or a result)"
)


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
    markup: bool = False  # a 2.6 edit's annotation layer (API_FACTS §10); never with a mask


_EDIT_GPT = EditCaps("gpt-image-2")


_EDIT_GPT_FIDELITY = replace(_EDIT_GPT, name="gpt-image-1", fidelity=True)


_EDIT_GPT_MARKUP = replace(_EDIT_GPT, name="gpt-image-2.6-flare", markup=True)


_EDIT_SEEDREAM = EditCaps(
    "doubao-seedream-4-0-250828",
    route="json",
    max_images=14,
    formats=("png", "jpeg", "webp"),
    max_image_bytes=None,  # upstream limits are not in the fact sheet: not enforced
    mask=False,
)


# Provider-specific (API_FACTS §7): limits unknown, so only the generic checks apply.
_EDIT_PROVIDER = EditCaps(
    "qwen-image-edit", max_images=None, max_image_bytes=None, mask_max_bytes=None
)


# --- the registry: one row per model ---------------------------------------------------------

Status = Literal["live", "deprecated", "retired", "assumed"]
Source = Literal["built-in", "catalog", "family"]


@dataclass(frozen=True)
class ModelInfo:
    """One row of the registry: everything cometnb knows about one model id.

    ``generation`` is what a ``/v1/images/generations`` request may carry (``None`` for an
    edit-only model), ``edit`` how the model takes input images. ``retired_on`` is the upstream
    shutdown date (API_FACTS.md §9). ``listed`` is False for SDK aliases and edit-only models:
    valid ids, not offered in lists. ``price_id`` names its row in the price table.

    Example::

        >>> info = model_info("dall-e-2")
        >>> info.family, info.max_images, info.edits, info.status_on(_dt.date(2026, 6, 1))
        ('dall-e', 10, True, 'retired')
    """

    id: str
    family: Family
    generation: ModelCaps | None
    edit: EditCaps
    retired_on: _dt.date | None = None
    replacement: str | None = None
    listed: bool = True
    source: Source = "built-in"
    price_id: str = ""

    @property
    def qualities(self) -> tuple[str, ...]:
        return self.generation.qualities if self.generation else ()

    @property
    def formats(self) -> tuple[str, ...]:
        return self.generation.output_formats if self.generation else ()

    @property
    def max_images(self) -> int:
        """The most images one generation request may ask for (``n``)."""
        return self.generation.max_n if self.generation else 0

    @property
    def edits(self) -> bool:
        """True when the model takes input images."""
        return self.edit.can_edit

    @property
    def status(self) -> Status:
        return self.status_on(_dt.date.today())

    def status_on(self, today: _dt.date) -> Status:
        """``live``, or ``deprecated`` / ``retired`` around the upstream shutdown date."""
        if self.source != "built-in":
            return "assumed"
        if self.retired_on is None:
            return "live"
        return "retired" if self.retired_on <= today else "deprecated"


def _row(
    model: str,
    generation: ModelCaps | None,
    edit: EditCaps,
    *,
    family: Family | None = None,
    retired_on: _dt.date | None = None,
    listed: bool = True,
) -> ModelInfo:
    """A row whose capability records carry ``model``'s own name (messages quote it)."""
    gen = replace(generation, name=model) if generation is not None else None
    fam = family or (gen.family if gen is not None else "gpt-image")
    return ModelInfo(
        id=model,
        family=fam,
        generation=gen,
        edit=replace(edit, name=model),
        retired_on=retired_on,
        replacement=_REPLACEMENT if retired_on is not None else None,
        listed=listed and generation is not None,
        price_id=model,
    )


# When the rows were last checked against API_FACTS.md §9–10 (what ``cometnb.models()`` dates
# the built-in rows by).
CHECKED_ON = _dt.date(2026, 12, 5)
# Upstream (OpenAI) shutdown dates: API_FACTS.md §9.
_DALL_E_END = _dt.date(2026, 5, 12)
_GPT_IMAGE_1_END = _dt.date(2026, 10, 23)
_DEPRECATED_END = _dt.date(2026, 12, 1)
# OpenAI's deprecations page names gpt-image-2.6-* as the successor; gpt-image-2 is the cheap one.
_REPLACEMENT = "gpt-image-2 (or gpt-image-2.6-flare)"
_GPT_IMAGE_25_SNAPSHOT = "2026-09-08"
_SEEDREAM_IDS = (
    "doubao-seedream-4-0-250828",
    "doubao-seedream-4-5-251128",
    "doubao-seedream-5-0-260128",
)

# Adding a model is one row here plus its prices (prices.json). The order is the order lists
# offer (gpt-image-2 first); aliases and edit-only models are valid ids but not in those lists.
_ROWS: tuple[ModelInfo, ...] = (
    _row("gpt-image-2", _GPT_IMAGE_2, _EDIT_GPT),
    _row("gpt-image-2.6-flare", _GPT_IMAGE_26, _EDIT_GPT_MARKUP),
    _row("gpt-image-2.6-sunburst", _GPT_IMAGE_26, _EDIT_GPT_MARKUP),
    _row("gpt-image-2.5-flare", _GPT_IMAGE_25, _EDIT_GPT),
    _row("gpt-image-2.5-sunburst", _GPT_IMAGE_25, _EDIT_GPT),
    _row("gpt-image-1.5", _GPT_IMAGE, _EDIT_GPT_FIDELITY, retired_on=_DEPRECATED_END),
    _row("gpt-image-1", _GPT_IMAGE, _EDIT_GPT_FIDELITY, retired_on=_GPT_IMAGE_1_END),
    _row("gpt-image-1-mini", _GPT_IMAGE, _EDIT_GPT, retired_on=_DEPRECATED_END),
    _row("dall-e-3", _DALL_E_3, EditCaps("", can_edit=False), retired_on=_DALL_E_END),
    _row(
        "dall-e-2",
        _DALL_E_2,
        EditCaps("", max_images=1, formats=("png",), max_image_bytes=4 * MB, square=True),
        retired_on=_DALL_E_END,
    ),
    _row("qwen-image", _QWEN_IMAGE, EditCaps("", can_edit=False)),
    *(_row(model, _SEEDREAM, _EDIT_SEEDREAM) for model in _SEEDREAM_IDS),
    # Aliases in the SDK's model list. The dated snapshot is gpt-image-2. Which model
    # chatgpt-image-latest points at is not documented, so its size rule is unverified.
    _row("gpt-image-2-2026-04-21", _GPT_IMAGE_2, _EDIT_GPT, listed=False),
    *(
        _row(
            f"gpt-image-2.5-{kind}-{_GPT_IMAGE_25_SNAPSHOT}", _GPT_IMAGE_25, _EDIT_GPT, listed=False
        )
        for kind in ("flare", "sunburst")
    ),
    _row(
        "chatgpt-image-latest",
        replace(_GPT_IMAGE, unverified=frozenset({"size"})),
        _EDIT_GPT,
        retired_on=_DEPRECATED_END,
        listed=False,
    ),
    # Edit-only models (provider-specific, API_FACTS §7).
    _row("qwen-image-edit", None, _EDIT_PROVIDER, family="qwen"),
    _row(
        "doubao-seededit-3-0-i2i-250628",
        None,
        replace(_EDIT_PROVIDER, max_images=1, mask=False),
        family="seedream",
    ),
)

MODELS: dict[str, ModelInfo] = {m.id: m for m in _ROWS}

# Views of the rows that the checkers, the simulator and the panel read.
KNOWN_MODELS: tuple[str, ...] = tuple(m.id for m in _ROWS if m.listed)
CAPABILITIES: dict[str, ModelCaps] = {m.id: m.generation for m in _ROWS if m.generation is not None}
EDIT_CAPABILITIES: dict[str, EditCaps] = {m.id: m.edit for m in _ROWS}
SHUTDOWN_DATES: dict[str, _dt.date] = {
    m.id: m.retired_on for m in _ROWS if m.retired_on is not None
}


# A later GPT Image 2.N id (gpt-image-2.7-flare, gpt-image-2.8-sunburst-2027-03-01) that the
# catalog or /v1/models reports: it takes its family's newest rules, marked ``assumed``.
_GPT_IMAGE_2_FAMILY = re.compile(r"gpt-image-2\.(\d+)-[a-z]+(?:-\d{4}-\d{2}-\d{2})?")
_FAMILY_BASE = "gpt-image-2.6-flare"
FAMILY_RULE = f"gpt-image-2.N-* takes {_FAMILY_BASE}'s rules"


def _family_row(model: str) -> ModelInfo | None:
    match = _GPT_IMAGE_2_FAMILY.fullmatch(model)
    if match is None or int(match.group(1)) <= 6:
        return None
    base = MODELS[_FAMILY_BASE]
    row = _row(model, base.generation, base.edit, listed=False)
    return replace(row, source="family", price_id=_FAMILY_BASE)


def is_assumed(model: str) -> bool:
    """True for an id cometnb does not list but gives a family's rules (status ``assumed``)."""
    info = model_info(model)
    return info is not None and info.source != "built-in"


def assumed_note(model: str) -> str | None:
    """The line shown wherever an ``assumed`` id is used (``None`` for any other id).

    Example::

        >>> print(assumed_note("gpt-image-2.7-flare"))  # doctest: +NORMALIZE_WHITESPACE
        gpt-image-2.7-flare is assumed: a later gpt-image-2.N model, given
        gpt-image-2.6-flare's rules and prices until cometnb knows it
    """
    if not is_assumed(model):
        return None
    return (
        f"{model} is assumed: a later gpt-image-2.N model, given {_FAMILY_BASE}'s rules and "
        "prices until cometnb knows it"
    )


_OFFER_ORDER = {"live": 0, "assumed": 1}


def offered_models(today: _dt.date | None = None, also: Iterable[str] = ()) -> tuple[str, ...]:
    """The listed models in the order a chooser offers them: live ones first, then the
    ``assumed`` ids among ``also`` (learned from the catalog or ``GET /v1/models``), then those
    shut down upstream (still valid ids: CometAPI's routing of them is unverified).

    Example::

        >>> offered_models(_dt.date(2026, 12, 5), also=["gpt-image-2.7-flare"])[9:11]
        ('gpt-image-2.7-flare', 'gpt-image-1.5')
    """
    day = today or _dt.date.today()
    learned = [m for m in dict.fromkeys(also) if m not in MODELS and is_assumed(m)]
    rows = [MODELS[m] for m in KNOWN_MODELS] + [r for m in learned if (r := model_info(m))]
    ranked = sorted(rows, key=lambda r: _OFFER_ORDER.get(r.status_on(day), 2))
    return tuple(r.id for r in ranked)


def model_info(model: str) -> ModelInfo | None:
    """The registry's row for ``model``; ``None`` for an id cometnb does not know.

    A later ``gpt-image-2.N-*`` id gets its family's rules, status ``assumed``.

    Example::

        >>> model_info("gpt-image-2.7-flare").status, model_info("gpt-image-9") is None
        ('assumed', True)
    """
    return MODELS.get(model) or _family_row(model)


def get_edit_caps(model: str) -> EditCaps | None:
    """How ``model`` takes input images; ``None`` for an unknown model (generic checks)."""
    info = model_info(model)
    return info.edit if info is not None else None


def edit_route(model: str) -> Route:
    """``"json"`` for models that take references in the generations body, else multipart."""
    caps = get_edit_caps(model)
    return caps.route if caps is not None else "multipart"


def takes_fidelity(model: str) -> bool:
    """True when ``model`` accepts ``input_fidelity`` (a panel shows the control only then)."""
    caps = get_edit_caps(model)
    return bool(caps and caps.fidelity)


# --- lifecycle: retired models ----------------------------------------------------------------


# Words in a model id that mark an image model in a /v1/models list of every kind of model.
_IMAGE_MARKERS = ("image", "dall-e", "seedream", "seededit", "flux", "imagen", "midjourney")


_MAX_LISTED = 12


def retired_note(model: str, today: _dt.date | None = None) -> str | None:
    """``"retired upstream on 2026-05-12"`` / ``"deprecated upstream, shutdown 2026-12-01"``.

    Example::

        >>> retired_note("dall-e-3", _dt.date(2026, 6, 1))
        'retired upstream (OpenAI shut it down on 2026-05-12)'
        >>> retired_note("gpt-image-2") is None
        True
    """
    date = SHUTDOWN_DATES.get(model)
    if date is None:
        return None
    if date <= (today or _dt.date.today()):
        return f"retired upstream (OpenAI shut it down on {date.isoformat()})"
    return f"deprecated upstream (OpenAI shuts it down on {date.isoformat()})"


def retired_message(model: str) -> str | None:
    """The one line for a model shut down upstream (``None`` for any other), whatever the date
    today: requests still go out (API_FACTS §9), this explains the error that comes back.

    Example::

        >>> retired_message("gpt-image-1-mini")
        'gpt-image-1-mini was shut down on 2026-12-01; use gpt-image-2 (or gpt-image-2.6-flare)'
    """
    info = MODELS.get(model)
    if info is None or info.retired_on is None:
        return None
    return f"{model} was shut down on {info.retired_on.isoformat()}; use {info.replacement}"


# What a 400 for a model shut down upstream may say (no captured body is public: API_FACTS §9).
_GONE_WORDS = ("deprecated", "does not exist", "not supported")


def is_model_gone(
    status: int | None, code: str | None, message: str | None, model: str | None = None
) -> bool:
    """Whether an error answer means "this model does not exist (any more)".

    For a ``model`` the registry marks shut down upstream, a 400 that says "deprecated", "does
    not exist" or "not supported" counts too (the same one line as the 404); for any other
    model those words may be about a field ("quality xhigh is not supported"), so they do not.

    Example::

        >>> is_model_gone(400, None, "The model is not supported", "gpt-image-1-mini")
        True
        >>> is_model_gone(400, None, "quality xhigh is not supported", "gpt-image-2")
        False
    """
    text = (message or "").lower()
    retired = model is not None and model in SHUTDOWN_DATES
    return (
        code == "model_not_found"
        or "has been deprecated" in text
        or (status == 404 and "model" in text)
        or (status == 404 and not text)
        or (retired and status == 400 and any(w in text for w in _GONE_WORDS))
    )


def image_model_ids(ids: Iterable[str]) -> list[str]:
    """The image models in a ``GET /v1/models`` id list, sorted, duplicates dropped."""
    return sorted({i for i in ids if any(m in i.lower() for m in _IMAGE_MARKERS)})


def _with_status(model: str, today: _dt.date | None) -> str:
    """``dall-e-3 (retired upstream)``: a listed model may still be one OpenAI shut down;
    ``gpt-image-2.7-flare (assumed)``: one cometnb gives a family's rules."""
    if is_assumed(model):
        return f"{model} (assumed)"
    if model not in SHUTDOWN_DATES:
        return model
    return f"{model} ({'retired' if _is_gone(model, today) else 'deprecated'} upstream)"


def _is_gone(model: str, today: _dt.date | None) -> bool:
    date = SHUTDOWN_DATES.get(model)
    return date is not None and date <= (today or _dt.date.today())


def _suggest_current(model: str, names: Sequence[str], today: _dt.date | None) -> str:
    """``" Did you mean X?"`` over the models not retired upstream; only when none is close,
    over the retired ones too (the list after it marks them) - never a shut-down model beside
    the line that says so when a current one fits."""
    current = [m for m in names if not _is_gone(m, today)]
    return did_you_mean(model, current, 0.8) or did_you_mean(model, names, 0.8)


def model_gone_message(
    model: str,
    available: Sequence[str] | None,
    known: Iterable[str] = (),
    today: _dt.date | None = None,
) -> str:
    """One line for a model the server does not serve.

    ``available`` is the server's image-model list (``None`` when it could not be read);
    ``known`` are cometnb's own names, used for a "did you mean" when the list is missing.

    Example::

        >>> model_gone_message("dall-e-3", ["gpt-image-2", "qwen-image"],
        ...                    today=_dt.date(2026, 6, 1))  # doctest: +NORMALIZE_WHITESPACE
        'dall-e-3 was shut down on 2026-05-12; use gpt-image-2 (or gpt-image-2.6-flare). Image
        models the API lists now: gpt-image-2, qwen-image.'
    """
    note = retired_note(model, today)
    if _is_gone(model, today):
        head = f"{retired_message(model)}."  # the one line (API_FACTS §9), then what is served
    else:
        head = f"The API does not serve {model}" + (f": it is {note}." if note else ".")
    live = [m for m in (available or ()) if m != model]
    hint = _suggest_current(model, live or list(known), today)
    if available is None:
        tail = " The list of current models could not be read (GET /v1/models)."
    elif live:
        named = [_with_status(m, today) for m in live[:_MAX_LISTED]]
        shown = ", ".join(named) + (", …" if len(live) > _MAX_LISTED else "")
        tail = f" Image models the API lists now: {shown}."
    else:
        tail = " The API lists no image models for this key."
    return head + hint + tail
