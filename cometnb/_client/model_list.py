"""When the API says a model does not exist: one line naming the image models it serves now.

A mistyped or retired model comes back as 404 / ``model_not_found`` / "has been deprecated".
:func:`explain_missing_model` replaces the generic "check the model name" hint with
:func:`cometnb._core.lifecycle.model_gone_message`, listing the image models from
``GET /v1/models`` when the server answers it within a few seconds (a free call: listing
models is never billed).
"""

from __future__ import annotations

from typing import Any

from cometnb._core import settings as _settings
from cometnb._core.capabilities import KNOWN_MODELS
from cometnb._core.errors import APIError, redact
from cometnb._core.lifecycle import image_model_ids, is_model_gone, model_gone_message

__all__ = ["explain_missing_model", "served_image_models"]

LIST_TIMEOUT_S = 5.0


def served_image_models(
    base_url: str | None = None, api_key: str | None = None, timeout: float = LIST_TIMEOUT_S
) -> list[str] | None:
    """The image model ids ``GET /v1/models`` lists, or ``None`` when it cannot be read."""
    import httpx

    url = (base_url or _settings.resolve_base_url()).rstrip("/") + "/models"
    key = _settings.resolve_api_key(api_key)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
        response.raise_for_status()
        data: Any = response.json().get("data")
        ids = [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    except Exception:  # unreachable, not JSON, another shape: the list is simply unknown
        return None
    return image_model_ids(ids)


def explain_missing_model(
    error: BaseException, model: str, base_url: str | None = None, api_key: str | None = None
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
