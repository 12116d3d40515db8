"""What each model accepts, as data: the capability table.

Every fact of API_FACTS.md §1 lives in :data:`CAPABILITIES` (one :class:`ModelCaps` per model
name); add a model or change a rule here. The checker that refuses a request before I/O,
:func:`cometnb._core.validation.validate_request`, walks this table and holds no
model-specific branches. Where the fact sheet says a value is *unverified*, the table lists
the field in ``ModelCaps.unverified`` and the checker accepts any value (after the generic
checks every model gets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "CAPABILITIES",
    "KNOWN_MODELS",
    "OPTIONAL_FIELDS",
    "FlexibleSize",
    "ModelCaps",
    "Requires",
    "get_caps",
]

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
    # OpenAI's cookbook (image-gen-models-prompting-guide) and third parties: 655,360 minimum.
    min_pixels: int = 655_360

    def problem(self, width: int, height: int) -> str | None:
        """Why ``width``x``height`` breaks the rule, or ``None`` if it is allowed; the reason
        names the nearest size that follows every rule."""
        from cometnb._core.size_rules import nearest_flexible_size, pixel_problem

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

# ByteDance Seedream (API_FACTS §7): /v1/images/generations with JSON, size a preset or WxH,
# URL results by default, up to 14 references (the edit table, edit_caps.py, has those rules).
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

_TABLE: tuple[ModelCaps, ...] = (
    _GPT_IMAGE_2,
    replace(_GPT_IMAGE, name="gpt-image-1.5"),
    _GPT_IMAGE,
    replace(_GPT_IMAGE, name="gpt-image-1-mini"),
    _DALL_E_3,
    _DALL_E_2,
    _QWEN_IMAGE,
    _SEEDREAM,
    replace(_SEEDREAM, name="doubao-seedream-4-5-251128"),
    replace(_SEEDREAM, name="doubao-seedream-5-0-260128"),
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


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
