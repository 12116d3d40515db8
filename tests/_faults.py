"""The fault table shared by the fault tests of every front end (Python API, magic, panel).

Each :class:`Case` is one simulator fault with what the retry policy must make of it: the
outcome, how many generation POSTs the simulator may see (billing), and words of which at least
one must appear in the short error. Retry-After values and latencies are tiny so the whole
suite stays fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import FAKE_KEY, assert_no_key_in_tree

MAX_ERROR_CHARS = 400  # "one short paragraph"
FAST_TIMEOUT = 0.6  # read timeout for the "hang" fault (the hang lasts longer)
HANG_S = 2.5


@dataclass(frozen=True)
class Case:
    """One fault and the behaviour the retry policy promises for it."""

    id: str
    kind: str
    sent: int  # generation POSTs the simulator must see
    ok: bool = False  # True: a safe retry ends in success
    times: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    words: tuple[str, ...] = ()  # the error names the problem with one of these
    model: str = "gpt-image-1-mini"
    fields: dict[str, Any] = field(default_factory=dict)
    min_wait_s: float = 0.0  # loose lower bound on elapsed time (a retry really waited)


STREAM = {"stream": True, "partial_images": 1}
URL_RESULT = {"response_format": "url"}

CASES: tuple[Case, ...] = (
    # Safe to retry: the request never ran. One fault, then success on the retry.
    Case("429-retry-after", "429", sent=2, ok=True, params={"retry_after": 0.05}),
    Case(
        "429-no-retry-after",
        "429",
        sent=2,
        ok=True,
        params={"no_retry_after": True},
        min_wait_s=0.3,
    ),
    Case("503", "503", sent=2, ok=True, params={"retry_after": 0.05}),
    # Safe, but still failing after max_retries (2): 1 + 2 attempts, then a RateLimitError.
    Case(
        "429-exhausted",
        "429",
        sent=3,
        times=3,
        params={"retry_after": 0.02},
        words=("429", "rate"),
    ),
    Case(
        "503-exhausted",
        "503",
        sent=3,
        times=3,
        params={"retry_after": 0.02},
        words=("503", "unavailable", "overload"),
    ),
    # Quota / balance exhausted: waiting will not help, so no retry.
    Case("429-quota", "429", sent=1, params={"quota": True}, words=("quota", "balance", "credit")),
    # May have been billed: sent exactly once by default.
    Case("500", "500", sent=1, words=("500", "server error")),
    # CometAPI's "500 with code invalid_request" is a bad request: never retried.
    Case("500-invalid", "500_invalid", sent=1, words=("500", "invalid")),
    Case("502", "502", sent=1, words=("502", "bad gateway", "upstream")),
    Case("504", "504", sent=1, words=("504", "timeout", "timed out")),
    Case("524", "524", sent=1, words=("524", "timeout", "timed out")),
    Case("reset", "reset", sent=1, words=("connection", "reset", "closed", "dropped")),
    Case("hang", "hang", sent=1, params={"seconds": HANG_S}, words=("timed out", "timeout")),
    Case(
        "truncated-json",
        "truncated_json",
        sent=1,
        words=("json", "truncated", "incomplete", "unusable", "invalid"),
    ),
    Case("corrupt-b64", "corrupt_b64", sent=1, words=("base64", "corrupt", "decode")),
    Case("non-image", "non_image", sent=1, words=("image",)),
    Case(
        "cut-stream",
        "cut_stream",
        sent=1,
        words=("stream", "cut", "ended", "incomplete", "closed"),
        fields=STREAM,
    ),
    Case(
        "stream-error",
        "stream_error",
        sent=1,
        words=("error", "stream", "failed"),
        fields=STREAM,
    ),
    Case(
        "expired-url",
        "expired_url",
        sent=1,
        words=("expired", "url", "download", "403", "410"),
        model="dall-e-3",
        fields=URL_RESULT,
    ),
    Case("html-404", "html_404", sent=1, words=("404", "not found", "html")),
    Case(
        "moderation",
        "moderation",
        sent=1,
        words=("safety", "moderation", "rejected", "policy"),
    ),
)
FAILING = tuple(c for c in CASES if not c.ok)
RETRIED = tuple(c for c in CASES if c.ok)


def arm(sim: Any, case: Case) -> None:
    """Inject the case's fault into the simulator."""
    sim.fault(case.kind, times=case.times, **case.params)


_TRACE = re.compile(r"Traceback \(most recent call last\)|^\s*File \"", re.MULTILINE)


def assert_short_error(text: str, case: Case | None = None, words: tuple[str, ...] = ()) -> None:
    """One short paragraph naming the problem: no traceback, no key."""
    assert FAKE_KEY not in text, "the API key leaked into an error"
    assert not _TRACE.search(text), f"a traceback was shown: {text[:300]!r}"
    assert text.strip(), "the error is empty"
    assert len(text) <= MAX_ERROR_CHARS, f"error too long ({len(text)} chars): {text!r}"
    wanted = words or (case.words if case else ())
    if wanted:
        lowered = text.lower()
        assert any(w in lowered for w in wanted), f"error does not name the problem: {text!r}"


def assert_clean(root: Path, *texts: str) -> None:
    """The key is in no file under ``root`` and in none of ``texts`` (outputs, reprs)."""
    assert_no_key_in_tree(root)
    for text in texts:
        assert FAKE_KEY not in text, "the API key leaked into captured output"


def history_statuses(path: Path) -> list[str]:
    """The statuses recorded in the history at ``path``, oldest first (a fresh reader)."""
    from cometnb.history import History

    return [r.status for r in History(path)]


def body_fields(case: Case, prompt: str) -> dict[str, Any]:
    return {"model": case.model, "prompt": prompt, **case.fields}
