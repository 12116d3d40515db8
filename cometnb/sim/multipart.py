"""``multipart/form-data`` parsing for the simulator's ``/v1/images/edits``.

The standard library's ``email`` parser does the splitting (it keeps binary parts byte for
byte under the HTTP policy); this module only turns its parts into text fields and file parts
and says clearly what is malformed, as a server would.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FilePart", "Form", "MultipartError", "parse_form"]


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
