"""Carrying a source image's settings into the panel's form when "Edit" is clicked.

An edit of a gpt-image-1-mini/low image should not silently go out as gpt-image-2/medium:
the form takes the source's model, size, quality and the other options that model accepts,
and when that changes what Generate would send, the panel says so, with both estimates.
A source made by a model that cannot edit (dall-e-3, qwen-image) keeps the form's model and
takes only the settings it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cometnb._core.model_registry import get_edit_caps

if TYPE_CHECKING:
    from cometnb._core.prices import Cost
    from cometnb._notebook.panel_form import RequestForm
    from cometnb._notebook.panel_spend import SpendLine

__all__ = ["carried_body", "carry_settings"]


def carried_body(source: Any) -> Mapping[str, Any] | None:
    """The request a source was made with (a Record's or a Generation's), else ``None``
    (a file, bytes, a PIL image: nothing to carry)."""
    body = getattr(source, "request", None)
    if isinstance(body, Mapping) and body.get("model"):
        return body
    return None


def _name(source: Any) -> str:
    rid = getattr(source, "record_id", None) or getattr(source, "id", None)
    return f"record {rid}" if isinstance(rid, str) and rid else "the result"


def carry_settings(
    form: RequestForm, spend: SpendLine, source: Any, before: tuple[str, Cost | None]
) -> str | None:
    """Load ``source``'s settings into ``form``; the sentence saying what changed (``None``
    when the form already held them, or the source carries none).

    ``before`` is the form's summary and estimate before the image was added.
    """
    body = carried_body(source)
    if body is None:
        return None
    model = str(body.get("model") or "")
    caps = get_edit_caps(model)
    takes_model = caps is None or caps.can_edit  # unknown models: trust the record
    form.load_settings(body, model=takes_model)
    now = form.summary()
    was, was_cost = before
    now_cost = spend.estimate()
    if now == was:
        return None
    kept = "" if takes_model else f" ({model} cannot edit images: kept {form.model.value})"
    return (
        f"Settings from {_name(source)}{kept}: was {was} ({_label(was_cost)}), "
        f"now {now} ({_label(now_cost)})."
    )


def _label(cost: Cost | None) -> str:
    return cost.label if cost is not None else "no estimate"
