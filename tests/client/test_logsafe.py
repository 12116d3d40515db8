"""Log records never carry a registered secret, in the message or in the traceback."""

from __future__ import annotations

import logging

import pytest

from cometnb._client import http as _http
from cometnb._core.errors import register_secret


def test_message_args_and_traceback_are_redacted(
    fake_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    register_secret(fake_key)
    _http.install()
    logger = logging.getLogger("httpx")
    with caplog.at_level("DEBUG"):
        logger.info("GET %s", f"https://cdn.test/a.png?key={fake_key}")
        try:
            raise RuntimeError(f"echoed {fake_key}")
        except RuntimeError:
            logging.getLogger("cometnb").exception("callback failed")
    assert len(caplog.records) == 2 and "https://cdn.test/a.png?key=" in caplog.text
    assert "echoed [REDACTED]" in caplog.text and fake_key not in caplog.text


def test_records_without_secrets_are_untouched() -> None:
    record = logging.LogRecord("httpx", logging.INFO, "", 0, "GET %s", ("https://x/",), None)
    assert _http.RedactSecrets().filter(record)
    assert (record.msg, record.args) == ("GET %s", ("https://x/",))


def test_install_is_idempotent() -> None:
    _http.install()
    _http.install()
    filters = logging.getLogger("httpx").filters
    assert sum(isinstance(f, _http.RedactSecrets) for f in filters) == 1
