"""When the API says a model does not exist: one line naming the image models it serves now.

A mistyped or retired model comes back as 404 / ``model_not_found`` / "has been deprecated".
:func:`explain_missing_model` replaces the generic "check the model name" hint with
:func:`cometnb._core.model_registry.model_gone_message`, listing the image models from
``GET /v1/models`` when the server answers it within a few seconds (a free call: listing
models is never billed). The GET goes through the HTTP seam (:func:`cometnb._client.http.get`):
the key stays a :class:`~cometnb._core.secret.Secret` (an interrupt while the server is slow
shows it in no traceback) and the reply is capped at :data:`LIST_LIMIT` decoded bytes.
"""

from __future__ import annotations

from typing import Any

from cometnb._client.http import get
from cometnb._core import settings as _settings
from cometnb._core.byte_limits import MB
from cometnb._core.errors import APIError, CometError, redact
from cometnb._core.model_registry import (
    KNOWN_MODELS,
    image_model_ids,
    is_model_gone,
    model_gone_message,
)
from cometnb._core.secret import Secret

__all__ = ["LIST_LIMIT", "explain_missing_model", "served_image_models"]

LIST_TIMEOUT_S = 5.0
# CometAPI lists a few hundred models in ~100 KB; anything past this is not a model list.
LIST_LIMIT = 4 * MB


def served_image_models(
    base_url: str | None = None,
    api_key: str | Secret | None = None,
    timeout: float = LIST_TIMEOUT_S,
) -> list[str] | None:
    """The image model ids ``GET /v1/models`` lists, or ``None`` when it cannot be read."""
    url = (base_url or _settings.resolve_base_url()).rstrip("/") + "/models"
    try:
        reply = get(
            url,
            what="the model list",
            limit=LIST_LIMIT,
            seconds=timeout,
            key=_settings.resolve_key(api_key),
        )
        data: Any = reply.json() if reply.ok else None
        data = data.get("data") if isinstance(data, dict) else None
        if not isinstance(data, list):
            return None
        ids = [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    except CometError:  # unreachable, over the cap, not JSON: the list is simply unknown
        return None
    return image_model_ids(ids)


def explain_missing_model(
    error: BaseException,
    model: str,
    base_url: str | None = None,
    api_key: str | Secret | None = None,
) -> bool:
    """Give ``error`` the one-line "not served" hint when it says the model is gone.

    Returns True when the error was about the model (and now says so plainly).
    """
    if not isinstance(error, APIError):
        return False
    if not is_model_gone(error.status, error.code, error.message):
        return False
    available = served_image_models(base_url, api_key)
    error.hint = redact(model_gone_message(model, available, KNOWN_MODELS))
    return True
