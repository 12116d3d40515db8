"""The HTTP seam is the only place that talks httpx's client API (issue 21, point 1).

Every request the package makes goes through :mod:`cometnb._client.http`; this test reads the
package's source and fails on any httpx client, request builder or send outside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import cometnb

PACKAGE = Path(cometnb.__file__).resolve().parent
SEAM = PACKAGE / "_client" / "http.py"
# An httpx client made, a request built or sent, or a one-shot call (httpx.get, .stream, ...).
FORBIDDEN = re.compile(
    r"httpx\.(?:Client|AsyncClient)\(|httpx\.(?:get|post|put|delete|request|stream)\("
    r"|\.build_request\(\s*(?:method|\"[A-Z]+\")|\.send\(\s*request"
    r"|\b(?:client|http|_http)\.(?:get|post|stream|send)\("
)


def test_no_httpx_client_or_request_outside_the_seam() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == SEAM or "sim" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "HTTP outside the seam:\n" + "\n".join(offenders)


def test_the_seam_itself_is_what_the_grep_finds() -> None:
    text = SEAM.read_text("utf-8")
    assert FORBIDDEN.search(text), "the pattern no longer matches how the seam sends"
