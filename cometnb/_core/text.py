"""Text helpers for what people are shown: clipping and "did you mean" for typos.

Plain :mod:`difflib` matching over the names cometnb knows (options, models, field values).
Unknown model names still pass through (CometAPI adds models often), but one that is a near
miss of a known model gets a warning before it is sent.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "clip",
    "close_to",
    "did_you_mean",
    "model_typo_warning",
    "suggest_option",
]


# --- clipping ---------------------------------------------------------------------------------

ELLIPSIS = "…"


def clip(text: str, limit: int, *, at_word: bool = False) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut.

    ``at_word`` cuts at the last space that keeps at least half of ``limit`` (a label reads
    "a red fox…", not "a red f…"); a text without such a space is cut where it must be.

    Example::

        >>> clip("a red fox asleep", 8), clip("a red fox asleep", 12, at_word=True)
        ('a red f…', 'a red fox…')
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    if at_word:
        space = cut.rfind(" ")
        if space >= limit // 2:
            cut = cut[:space].rstrip()
    return cut + ELLIPSIS


# --- did you mean -----------------------------------------------------------------------------

# How alike two names must be (difflib ratio). Option names are short: a single dropped or
# swapped letter in "quality" gives ~0.93; "size" vs "style" 0.67 stays below the cutoff.
OPTION_CUTOFF = 0.75


MODEL_CUTOFF = 0.85


def close_to(word: str, choices: Iterable[str], cutoff: float = OPTION_CUTOFF) -> list[str]:
    """The choices most like ``word``, best first (at most three).

    Example::

        >>> close_to("qualty", ["quality", "size", "style"])
        ['quality']
    """
    return difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=3, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = OPTION_CUTOFF) -> str:
    """`` Did you mean X?`` (with a leading space) or ``""`` when nothing is close.

    Example::

        >>> did_you_mean("hihg", ["low", "medium", "high"])
        ' Did you mean high?'
    """
    found = close_to(word, choices, cutoff)
    if not found:
        return ""
    if len(found) == 1:
        return f" Did you mean {found[0]}?"
    return f" Did you mean {', '.join(found[:-1])} or {found[-1]}?"


def suggest_option(flag: str, known_flags: Iterable[str]) -> str | None:
    """The known ``--option`` closest to a mistyped ``flag`` (``--qualty=low`` works too).

    Example::

        >>> suggest_option("--qualty", ["--quality", "--size", "--model"])
        '--quality'
        >>> suggest_option("--banana", ["--quality", "--size"]) is None
        True
    """
    name = flag.split("=", 1)[0]
    long_flags = [f for f in known_flags if f.startswith("--")]
    found = close_to(name, long_flags)
    return found[0] if found else None


def model_typo_warning(model: str, known: Iterable[str]) -> str | None:
    """A warning when ``model`` is unknown but nearly a known name; ``None`` otherwise.

    Example::

        >>> model_typo_warning("gpt-imgae-2", ["gpt-image-2", "dall-e-3"])
        'gpt-imgae-2 is not a model cometnb knows. Did you mean gpt-image-2? Sending it as typed.'
        >>> model_typo_warning("flux-pro", ["gpt-image-2"]) is None
        True
    """
    names = list(known)
    if model in names:
        return None
    hint = did_you_mean(model, names, MODEL_CUTOFF)
    if not hint:
        return None
    return f"{model} is not a model cometnb knows.{hint} Sending it as typed."
