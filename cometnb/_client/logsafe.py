"""Keep the API key out of log records, including those httpx and httpcore write.

httpx logs every request URL at INFO, and httpcore logs failed header writes at DEBUG. A server
may put the key into an image URL, and a header error quotes the header value, so a user who
turns logging on could see the key. :func:`install` adds a filter to exactly the loggers that
write such records; the filter replaces any registered secret (see
:func:`~._errors.register_secret`) in the formatted message and in the exception text.
Filters on a logger only see records created by that logger, hence the explicit list.
"""

from __future__ import annotations

import logging
import threading

from cometnb._core.errors import redact

__all__ = ["LOGGERS", "RedactSecrets", "install"]

LOGGERS = (
    "cometnb",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_install_lock = threading.Lock()


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message or traceback holds a secret; never drops a record.

    Example::

        >>> record = logging.LogRecord("httpx", 20, "", 0, "GET %s", ("https://x/",), None)
        >>> RedactSecrets().filter(record)
        True
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is redacted once here.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install() -> None:
    """Add :class:`RedactSecrets` to :data:`LOGGERS` (once per process)."""
    with _install_lock:  # the loggers' own filters say whether it is installed: no flag
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactSecrets) for f in logger.filters):
                logger.addFilter(RedactSecrets())
