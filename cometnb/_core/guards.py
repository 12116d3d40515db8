"""Checks on request text made before anything is sent.

* :func:`check_encodable` — every string of a request body can be written as UTF-8. A lone
  surrogate (``'\\ud800'``, which some copy/paste and ``surrogateescape`` decoding produce)
  cannot, and used to escape as a raw ``UnicodeEncodeError`` from deep inside httpx.
* :func:`check_no_key` — no string of a request carries the API key (a prompt that
  interpolates a variable holding it would send it to the server and into the history).

Both raise :class:`ValidationError` naming the field and the position, so nothing is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cometnb._core.errors import ValidationError
from cometnb._core.secret import Secret

__all__ = ["check_encodable", "check_no_key", "check_text", "first_unencodable", "strings_in"]


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


def check_text(body: Mapping[str, Any]) -> None:
    """Both checks, with the key resolved as a request would be (``ImageRequest.validate``)."""
    from cometnb._core.settings import resolve_key

    check_encodable(body)
    check_no_key(body, resolve_key())
