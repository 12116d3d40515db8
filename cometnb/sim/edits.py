"""The simulator's side of edits: the multipart body, the inputs in it, their checks, the result.

``POST /v1/images/edits`` arrives as ``multipart/form-data``: :func:`parse_form` splits it with
the standard library's ``email`` parser (which keeps binary parts byte for byte under the HTTP
policy) into text fields and :class:`FilePart` s, saying clearly what is malformed, as a server
would. :func:`form_request` turns the form into a body and :class:`EditInputs`; seedream
references arrive as data URIs in a generations JSON body instead (:func:`json_references`).
:func:`check_edit` validates the inputs with the client's own tables (so the simulator refuses
exactly what cometnb refuses, with OpenAI-shaped errors) and :func:`render_edit` turns them into
a picture that shows where it came from: the first input recoloured, the masked region marked,
2.6's markup (annotations) drawn over it, the other inputs as thumbnails, the prompt stamped.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from cometnb._core.edit_inputs import ImageInput, resolve_source
from cometnb._core.errors import ValidationError
from cometnb._core.validation import validate_edit

__all__ = [
    "EditInputs",
    "EditRefused",
    "FilePart",
    "Form",
    "MultipartError",
    "check_edit",
    "form_request",
    "input_tokens",
    "json_references",
    "parse_form",
    "render_edit",
]


class MultipartError(ValueError):
    """The body is not usable ``multipart/form-data`` (the message says why)."""


@dataclass(frozen=True)
class FilePart:
    """One uploaded file: the form field name, its filename and declared content type."""

    name: str
    filename: str | None
    content_type: str | None  # None when the part declared none
    data: bytes = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """What the request log keeps: everything but the bytes (a hash stands for them)."""
        return {
            "name": self.name,
            "filename": self.filename,
            "content_type": self.content_type,
            "bytes": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


@dataclass
class Form:
    """A parsed form: text fields (last value wins, as in most servers) and file parts."""

    fields: dict[str, str]
    files: list[FilePart]

    def files_named(self, *names: str) -> list[FilePart]:
        return [f for f in self.files if f.name in names]


def parse_form(content_type: str | None, raw: bytes) -> Form:
    """Parse ``raw`` sent with ``content_type``; :class:`MultipartError` when it cannot."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise MultipartError(
            f"expected Content-Type multipart/form-data; got {content_type or 'none'}"
        )
    if "boundary=" not in content_type:
        raise MultipartError("the multipart Content-Type has no boundary")
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart() or message.defects:
        raise MultipartError("the multipart body is malformed (missing or broken boundaries)")
    form = Form({}, [])
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise MultipartError("a multipart part has no name in its Content-Disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None and part.get("content-type") is None:
            form.fields[name] = data.decode("utf-8", "replace")
            continue
        declared = part.get("content-type")
        ctype = part.get_content_type() if declared is not None else None
        form.files.append(FilePart(name, filename, ctype, data))
    return form


_INT_FIELDS = ("n", "partial_images", "output_compression")
_IMAGE_PARTS = ("image", "image[]")
_DATA_URI_PREFIX = "data:"


class EditRefused(Exception):
    """What the real service answers 400 to before looking at the images' content."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass(frozen=True)
class EditInputs:
    """The decoded input images, mask and markup of one edit request, plus what arrived on the
    wire."""

    images: tuple[ImageInput, ...]
    mask: ImageInput | None
    parts: tuple[dict[str, Any], ...]  # per part: name, filename, content_type, bytes, sha256
    markup: ImageInput | None = None

    @property
    def key(self) -> str:
        """A short hash of every input: results differ when the inputs do."""
        digest = hashlib.sha256()
        layers = [layer for layer in (self.mask, self.markup) if layer is not None]
        for img in (*self.images, *layers):
            digest.update(img.sha256.encode())
        return digest.hexdigest()[:16]


# --- reading the request ---------------------------------------------------------------------


def form_request(form: Form) -> tuple[dict[str, Any], EditInputs]:
    """The typed body (text fields) and the inputs of a multipart edit; refuses bad uploads."""
    body: dict[str, Any] = {k: _typed(k, v) for k, v in form.fields.items()}
    uploads = form.files_named(*_IMAGE_PARTS)
    if not uploads:
        raise EditRefused("Missing required parameter: 'image'.", "image", "missing_required")
    images = tuple(_decode_part(p) for p in uploads)
    masks, markups = form.files_named("mask"), form.files_named("markup")
    mask = _decode_part(masks[0]) if masks else None
    markup = _decode_part(markups[0]) if markups else None
    parts = tuple(p.summary() for p in form.files)
    return body, EditInputs(images, mask, parts, markup)


def json_references(body: dict[str, Any]) -> EditInputs | None:
    """Seedream's ``image`` (one data URI or a list of them) decoded; ``None`` when absent."""
    refs = body.get("image")
    if refs is None:
        return None
    items = refs if isinstance(refs, list) else [refs]
    images = []
    for position, item in enumerate(items):
        if not isinstance(item, str) or not item.startswith(_DATA_URI_PREFIX):
            raise EditRefused(
                f"image[{position}] must be an image URL or a data URI (data:image/png;base64,…)",
                "image",
            )
        header, _, payload = item.partition(",")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise EditRefused(f"image[{position}] is not valid base64", "image") from None
        images.append(_decoded(data, f"image[{position}]", header[5:].split(";")[0]))
    parts = tuple(
        {"name": "image", "content_type": img.content_type, "bytes": img.size_bytes}
        for img in images
    )
    return EditInputs(tuple(images), None, parts)


def _decode_part(part: FilePart) -> ImageInput:
    ctype = (part.content_type or "").lower()
    if not part.filename or not ctype or ctype == "application/octet-stream":
        # What the upstream says to uploads without a filename or type (API_FACTS §7).
        shown = ctype or "application/octet-stream"
        raise EditRefused(
            f"Invalid file '{part.name}': unsupported mimetype ('{shown}'). Supported file "
            "formats are 'image/jpeg', 'image/png', and 'image/webp'.",
            part.name.rstrip("[]"),
            "unsupported_file",
        )
    return _decoded(part.data, part.filename, ctype)


def _decoded(data: bytes, label: str, declared: str) -> ImageInput:
    try:
        found = resolve_source(data, label=label)
    except ValidationError:
        raise EditRefused(
            f"Invalid image file or mode for image '{label}', please check your image file.",
            "image",
            "invalid_image_file",
        ) from None
    if declared and declared != found.content_type:
        raise EditRefused(
            f"Image '{label}' is declared as {declared} but its bytes are {found.content_type}.",
            "image",
            "invalid_image_file",
        )
    return found


def _typed(name: str, value: str) -> Any:
    if name in _INT_FIELDS:
        try:
            return int(value)
        except ValueError:
            return value  # validation names the field
    if name == "stream":
        return {"true": True, "false": False}.get(value.lower(), value)
    return value


# --- checking --------------------------------------------------------------------------------


def check_edit(body: dict[str, Any], inputs: EditInputs) -> None:
    """Raise :class:`ValidationError` for what the model cannot take (the client's own rules)."""
    fields = {k: v for k, v in body.items() if k not in ("prompt", "model", "image")}
    validate_edit(str(body.get("model")), inputs.images, inputs.mask, fields, markup=inputs.markup)


def input_tokens(inputs: EditInputs, fidelity: str | None) -> int:
    """Image input tokens: about 194 per 1024² input (API_FACTS §8), more at high fidelity."""
    per_area = 194 / (1024 * 1024)
    tokens = sum(max(65, round(per_area * i.width * i.height)) for i in inputs.images)
    return tokens * (4 if fidelity == "high" else 1)


# --- drawing ---------------------------------------------------------------------------------


def render_edit(
    inputs: EditInputs,
    prompt: str,
    size: tuple[int, int],
    fmt: str,
    *,
    variant: int = 0,
    preview: int = 0,
    compression: int | None = None,
) -> bytes:
    """A result that visibly derives from the inputs (see the module docstring)."""
    base = _recoloured(inputs.images[0], size, variant)
    if inputs.mask is not None:
        _mark_mask(base, inputs.mask)
    if inputs.markup is not None:
        _draw_markup(base, inputs.markup)
    _paste_references(base, inputs.images[1:])
    draw = ImageDraw.Draw(base)
    short = min(size)
    _stamp(draw, prompt[:120], (short // 16, short // 16), max(10, short // 24), (0, 0, 0))
    _stamp(
        draw,
        "SIMULATED EDIT",
        (short // 16, size[1] - short // 6),
        max(10, short // 14),
        (200, 0, 0),
    )
    if preview:
        base = base.filter(ImageFilter.GaussianBlur(radius=preview * 3))
    return _encode(base, fmt, compression)


def _recoloured(first: ImageInput, size: tuple[int, int], variant: int) -> Image.Image:
    with Image.open(io.BytesIO(first.data)) as img:
        grey = ImageOps.grayscale(img.convert("RGB")).resize(size, Image.Resampling.BILINEAR)
    tints = ((30, 20, 90), (90, 30, 20), (20, 80, 40))
    dark = tints[variant % len(tints)]
    return ImageOps.colorize(grey, black=dark, white=(255, 230, 160)).convert("RGB")


def _mark_mask(base: Image.Image, mask: ImageInput) -> None:
    """Hatch the region the mask opens (alpha 0) in magenta, so tests and eyes can see it."""
    with Image.open(io.BytesIO(mask.data)) as img:
        alpha = img.convert("RGBA").getchannel("A").resize(base.size, Image.Resampling.NEAREST)
    editable = alpha.point(lambda a: 255 if a == 0 else 0)
    overlay = Image.new("RGB", base.size, (255, 0, 255))
    base.paste(overlay, (0, 0), editable.point(lambda v: v // 2))
    box = editable.getbbox()
    if box is not None:
        ImageDraw.Draw(base).rectangle(
            box, outline=(255, 0, 255), width=max(2, min(base.size) // 128)
        )


def _draw_markup(base: Image.Image, markup: ImageInput) -> None:
    """Lay the annotations over the result as drawn (what a real 2.6 edit would follow)."""
    with Image.open(io.BytesIO(markup.data)) as img:
        layer = img.convert("RGBA").resize(base.size, Image.Resampling.NEAREST)
    base.paste(layer, (0, 0), layer)


def _paste_references(base: Image.Image, others: tuple[ImageInput, ...]) -> None:
    side = max(16, min(base.size) // 6)
    for position, ref in enumerate(others[:6]):
        with Image.open(io.BytesIO(ref.data)) as img:
            thumb = ImageOps.fit(img.convert("RGB"), (side, side))
        x = base.width - (position + 1) * (side + 4)
        base.paste(thumb, (x, base.height - side - 4))


def _stamp(
    draw: ImageDraw.ImageDraw, text: str, at: tuple[int, int], px: int, plate: tuple[int, int, int]
) -> None:
    font = ImageFont.load_default(size=px)
    left, top, right, bottom = draw.textbbox(at, text, font=font)
    pad = px // 4
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=plate)
    draw.text(at, text, font=font, fill=(255, 255, 255))


def _encode(image: Image.Image, fmt: str, compression: int | None) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        image.save(out, "JPEG", quality=max(1, min(95, compression or 90)))
    elif fmt == "webp":
        image.save(out, "WEBP", quality=compression if compression is not None else 90, method=0)
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()
