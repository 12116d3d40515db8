"""No reply can exhaust memory or time (issue 13, item 2).

Every hostile reply runs in a fresh process (``_bomb_client.py``) against the simulator in
this one, and that process's peak RSS must stay under :data:`MAX_RSS_MB` while it ends in one
recorded :class:`ResponseError` naming the cap. Before the caps, the 1 GB gzip body alone
took a kernel to 3.9 GB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _bomb_client import run_in_child

from cometnb.sim import SimServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MAX_RSS_MB = 300
HERE = Path(__file__).resolve().parent
MODEL = "gpt-image-1-mini"
STREAM = {"model": "gpt-image-1", "partial_images": 1}


def run_bomb(sim: SimServer, tmp_path: Path, call: dict[str, Any]) -> dict[str, Any]:
    outcome = run_in_child(
        sim.base_url, tmp_path / "h", {"prompt": "a lighthouse", "model": MODEL, **call}
    )
    print(f"peak RSS {outcome['maxrss_mb']:.0f} MB for {call}")  # with -s: the figures
    assert outcome["maxrss_mb"] < MAX_RSS_MB, f"peak RSS {outcome['maxrss_mb']:.0f} MB"
    assert outcome.get("type") == "ResponseError", outcome
    assert outcome["records"] == ["error"], "the failure must be recorded once"
    assert len(outcome["message"]) < 400
    return outcome


@pytest.mark.parametrize(
    ("fault", "params", "call", "words"),
    [
        ("gzip_bomb", {"mb": 1024}, {}, "more than 43.3 MB"),
        ("gzip_bomb", {"mb": 4096}, {"n": 2}, "more than 85.7 MB"),
        ("gzip_bomb", {"mb": 1024, "status": 500}, {}, "more than 1 MB"),
        ("gzip_bomb", {"mb": 1024, "status": 429}, {}, "more than 1 MB"),
        ("download_bomb", {"mb": 2048}, {}, "more than 31.7 MB"),
        ("endless_download", {}, {}, "more than 31.7 MB"),
        ("endless_sse_line", {}, STREAM, "longer than 42.3 MB"),
        ("gzip_bomb", {"mb": 1024}, {"many": True}, "more than 43.3 MB"),
        ("download_bomb", {"mb": 2048}, {"many": True}, "more than 31.7 MB"),
        ("endless_sse_line", {}, {**STREAM, "stream": True, "many": True}, "longer than 42.3 MB"),
    ],
    ids=[
        "gzip-body",
        "gzip-body-n2",
        "gzip-error-body",
        "gzip-429-body",
        "gzip-download",
        "endless-download",
        "endless-sse-line",
        "gzip-body-generate-many",
        "gzip-download-generate-many",
        "endless-sse-line-generate-many",
    ],
)
def test_bomb_is_cut_off_with_bounded_memory(
    sim: SimServer,
    tmp_path: Path,
    fault: str,
    params: dict[str, Any],
    call: dict[str, Any],
    words: str,
) -> None:
    sim.fault(fault, **params)
    outcome = run_bomb(sim, tmp_path, call)
    assert words in outcome["message"]
    assert "billed" in outcome["message"]
    assert sim.request_count == 1, "a reply that may have been billed is never retried"


@pytest.mark.parametrize(
    ("fault", "params", "call", "words"),
    [
        ("keepalive_stream", {"seconds": 0.05}, {**STREAM, "limits": {"deadline_s": 1.5}}, "1.5 s"),
        ("drip", {"seconds": 0.1}, {"limits": {"deadline_s": 1.5}}, "1.5 s"),
        ("drip_download", {"seconds": 0.1}, {"limits": {"download_s": 1.5}}, "1.5 s"),
    ],
    ids=["keepalive-only-stream", "drip-body", "drip-download"],
)
def test_endless_slow_reply_ends_at_the_deadline(
    sim: SimServer,
    tmp_path: Path,
    fault: str,
    params: dict[str, Any],
    call: dict[str, Any],
    words: str,
) -> None:
    sim.fault(fault, **params)
    outcome = run_bomb(sim, tmp_path, {"timeout": 5.0, **call})
    assert words in outcome["message"] and "still sending" in outcome["message"]
    assert outcome["elapsed_s"] < 30  # loose: the per-read timeout alone would never end it


def test_limits_are_configurable_and_checked() -> None:
    from cometnb._core.byte_limits import MB, ByteLimits

    small = ByteLimits(image_mb=2)
    assert small.download_bytes == 2 * MB and small.json_body_bytes(3) > 3 * small.download_bytes
    with pytest.raises(ValueError, match="image_mb"):
        ByteLimits(image_mb=0)
    # The defaults hold the largest real answer: a 3840x2160 RGBA PNG, base64, per image.
    big = ByteLimits()
    assert big.download_bytes > 3840 * 2160 * 4
    assert big.sse_line_bytes > 4 * (3840 * 2160 * 4) // 3


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (30000, 30000)])
def test_image_over_the_pixel_cap_is_a_recorded_response_error(
    sim: SimServer, tmp_path: Path, width: int, height: int
) -> None:
    # 8000x8000 (64 million pixels) passes Pillow's own check silently; cometnb's cap (four
    # times the largest real image) refuses it before any pixel is decoded.
    sim.fault("huge_header_png", width=width, height=height)
    outcome = run_bomb(sim, tmp_path, {})
    assert f"{width}×{height} pixels" in outcome["message"]


def test_a_stream_of_many_small_events_is_capped_in_total() -> None:
    from cometnb._client.http import Budget, LineSplitter
    from cometnb._core.byte_limits import MB
    from cometnb._core.errors import ResponseError

    splitter = LineSplitter(Budget("h", "the stream", limit=2 * MB, seconds=60), limit=MB)
    lines = 0
    with pytest.raises(ResponseError, match="more than 2 MB for the stream"):
        for _ in range(100):
            lines += len(splitter.feed(b"event: noise\n\n" * 8192))
    assert lines > 0
