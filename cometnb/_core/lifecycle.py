"""Which models are retired upstream, and one clear line when the API says a model is gone.

OpenAI shut down dall-e-2 and dall-e-3 on 2026-05-12 and gpt-image-1 on 2026-10-23;
gpt-image-1-mini, gpt-image-1.5 and chatgpt-image-latest are deprecated with shutdown on
2026-12-01 (API_FACTS.md §9). Whether CometAPI still routes them is unverified, so nothing is
refused for it: when the server answers 404 / ``model_not_found`` / "has been deprecated",
:func:`model_gone_message` turns that into one line naming what is retired and the image
models the server lists now (``GET /v1/models``, when it could be read).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence

from cometnb._core.suggest import did_you_mean

__all__ = [
    "SHUTDOWN_DATES",
    "image_model_ids",
    "is_model_gone",
    "model_gone_message",
    "retired_note",
]

# Upstream (OpenAI) shutdown dates, API_FACTS.md §9. Data, not logic: add rows as they come.
SHUTDOWN_DATES: dict[str, _dt.date] = {
    "dall-e-2": _dt.date(2026, 5, 12),
    "dall-e-3": _dt.date(2026, 5, 12),
    "gpt-image-1": _dt.date(2026, 10, 23),
    "gpt-image-1-mini": _dt.date(2026, 12, 1),
    "gpt-image-1.5": _dt.date(2026, 12, 1),
    "chatgpt-image-latest": _dt.date(2026, 12, 1),
}
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


def is_model_gone(status: int | None, code: str | None, message: str | None) -> bool:
    """Whether an error answer means "this model does not exist (any more)"."""
    text = (message or "").lower()
    return (
        code == "model_not_found"
        or "has been deprecated" in text
        or (status == 404 and "model" in text)
        or (status == 404 and not text)
    )


def image_model_ids(ids: Iterable[str]) -> list[str]:
    """The image models in a ``GET /v1/models`` id list, sorted, duplicates dropped."""
    return sorted({i for i in ids if any(m in i.lower() for m in _IMAGE_MARKERS)})


def _with_status(model: str, today: _dt.date | None) -> str:
    """``dall-e-3 (retired upstream)``: a listed model may still be one OpenAI shut down."""
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
        'The API does not serve dall-e-3: it is retired upstream (OpenAI shut it down on
        2026-05-12). Image models the API lists now: gpt-image-2, qwen-image.'
    """
    note = retired_note(model, today)
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
