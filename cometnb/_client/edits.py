"""The wire form of an edit: multipart ``POST /v1/images/edits``, or JSON references.

API_FACTS.md §7: one input goes as an ``image`` part, several as repeated ``image[]`` parts,
each with a filename and the right content type (uploads as ``application/octet-stream`` are
refused upstream); the mask is a ``mask`` part; every other field is a text part. Seedream
takes its references as data URIs in the JSON ``image`` array of ``/v1/images/generations``.

:func:`describe_edit` is what ``--dry-run`` shows: the fields and each input by name, type and
size, never the bytes (and the key travels in a header, so it is never part of a body).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from cometnb._core.edit_inputs import EditBody, ImageInput
from cometnb._core.model_registry import edit_route

__all__ = [
    "FilePart",
    "describe_edit",
    "edit_path",
    "form_fields",
    "is_multipart",
    "json_with_references",
    "multipart_files",
]

FilePart = tuple[str, tuple[str, bytes, str]]


def edit_path(body: Mapping[str, Any]) -> str:
    """The path below the base URL this body goes to."""
    if (
        isinstance(body, EditBody)
        and body.images
        and edit_route(str(body.get("model"))) == "multipart"
    ):
        return "/images/edits"
    return "/images/generations"


def is_multipart(body: Mapping[str, Any]) -> TypeGuard[EditBody]:
    """True when ``body`` is an edit that goes as multipart to ``/images/edits``."""
    return edit_path(body) == "/images/edits"


def form_fields(body: Mapping[str, Any]) -> dict[str, str]:
    """The text parts: every field as the string a form carries (``true``, ``2``, JSON)."""
    return {str(k): _text(v) for k, v in body.items() if v is not None}


def multipart_files(body: EditBody) -> list[FilePart]:
    """The file parts in order: ``image`` (one input) or ``image[]`` (several), then ``mask``."""
    name = "image" if len(body.images) == 1 else "image[]"
    parts: list[FilePart] = [
        (name, (img.filename, img.data, img.content_type)) for img in body.images
    ]
    if body.mask is not None:
        m = body.mask
        parts.append(("mask", (_mask_name(m), m.data, m.content_type)))
    return parts


def json_with_references(body: Mapping[str, Any]) -> dict[str, Any]:
    """A generations JSON body with the references as data URIs (seedream's ``image``)."""
    out = dict(body)
    if isinstance(body, EditBody) and body.images:
        out["image"] = [_data_uri(img) for img in body.images]
    return out


def describe_edit(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an edit would send, for ``--dry-run``: fields and inputs, no bytes and no key."""
    if not isinstance(body, EditBody) or not body.images:
        return dict(body)
    shown: dict[str, Any] = {"endpoint": edit_path(body)}
    if is_multipart(body):
        shown["multipart fields"] = form_fields(body)
        shown["files"] = [
            {"part": part, **_input_info(img), "filename": sent[0]}  # the name as uploaded
            for (part, sent), img in zip(multipart_files(body), _all_inputs(body), strict=True)
        ]
    else:
        shown["json"] = dict(body)
        shown["image (data URIs)"] = [_input_info(img) for img in body.images]
    return shown


def _all_inputs(body: EditBody) -> list[ImageInput]:
    return [img for _, img in body.inputs]


def _input_info(img: ImageInput) -> dict[str, Any]:
    info: dict[str, Any] = {
        "source": img.label,
        "filename": img.filename,
        "content_type": img.content_type,
        "size": f"{img.width}x{img.height}",
        "bytes": img.size_bytes,
    }
    if img.record_id:
        info["record"] = img.record_id if img.index in (None, 0) else f"{img.record_id}:{img.index}"
    return info


def _mask_name(mask: ImageInput) -> str:
    return mask.filename if mask.filename.startswith("mask") else f"mask-{mask.filename}"


def _data_uri(img: ImageInput) -> str:
    return f"data:{img.content_type};base64,{base64.b64encode(img.data).decode('ascii')}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))
