"""SSE decoding and stream assembly, including the shared stream fixture."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_FIXTURES

from cometnb._client.exchange import COMPLETED, PARTIAL, SSEDecoder, SSEEvent, StreamAssembler
from cometnb._core.errors import APIError, ResponseError
from cometnb._core.images import decode_b64_image, sniff_format

STREAM = SHARED_FIXTURES / "stream.txt"
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def _events(lines: list[str]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    last = decoder.flush()
    return [*out, last] if last else out


def _data(kind: str, **fields: object) -> str:
    return "data: " + json.dumps({"type": kind, **fields})


def test_decoder_fields_comments_multiline_and_crlf() -> None:
    events = _events(
        [": keep-alive", "event: a", "data: one", "data: two", "", "data:x\r", "id: 7", "retry: 5"]
    )
    assert events == [SSEEvent("a", "one\ntwo"), SSEEvent(None, "x")]


def test_decoder_ignores_blank_events() -> None:
    assert _events(["", "", "event: lonely", ""]) == []


def test_the_shared_stream_fixture() -> None:
    assembler = StreamAssembler()
    partials = []
    for event in _events(STREAM.read_text().splitlines()):
        partial = assembler.handle(event)
        if partial is not None:
            partials.append(partial)
    assert [p.index for p in partials] == [0]
    assert sniff_format(decode_b64_image(partials[0].b64_json)) == "png"
    result = assembler.result()
    assert len(result.items) == 1 and result.items[0].b64_json
    assert result.usage is not None and result.usage["input_tokens"] == 16
    assert result.created == 1776841943
    assert result.meta["size"] == "1024x1024" and result.meta["output_format"] == "png"


def test_done_marker_ends_the_stream() -> None:
    assembler = StreamAssembler()
    for event in _events([_data(COMPLETED, b64_json=PNG_B64), "", "data: [DONE]", ""]):
        assembler.handle(event)
    assert assembler.done
    assert len(assembler.result().items) == 1


def test_type_falls_back_to_the_event_name() -> None:
    assembler = StreamAssembler()
    event = SSEEvent(PARTIAL, json.dumps({"b64_json": PNG_B64, "partial_image_index": 2}))
    partial = assembler.handle(event)
    assert partial is not None and partial.index == 2


def test_unknown_event_types_are_ignored() -> None:
    assembler = StreamAssembler()
    assert assembler.handle(SSEEvent(None, json.dumps({"type": "keepalive"}))) is None


def test_error_object_mid_stream_raises_api_error() -> None:
    assembler = StreamAssembler("api.test")
    assembler.handle(SSEEvent(None, json.dumps({"type": PARTIAL, "b64_json": PNG_B64})))
    body = {"error": {"message": "upstream failed", "code": "server_error", "type": "x"}}
    with pytest.raises(APIError, match="upstream failed") as info:
        assembler.handle(SSEEvent("error", json.dumps(body)))
    assert info.value.code == "server_error"


def test_output_moderation_mid_stream_says_content_policy() -> None:
    event = {"type": "error", "code": "moderation_blocked", "message": "blocked"}
    with pytest.raises(APIError, match="content policy"):
        StreamAssembler().handle(SSEEvent(None, json.dumps(event)))


def test_stream_without_a_completed_event_is_a_response_error() -> None:
    assembler = StreamAssembler("api.test")
    assembler.handle(SSEEvent(None, json.dumps({"type": PARTIAL, "b64_json": PNG_B64})))
    with pytest.raises(ResponseError, match="ended before the final image"):
        assembler.result()


def test_malformed_event_json_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="malformed stream event"):
        StreamAssembler().handle(SSEEvent(None, "{not json"))


def test_completed_without_image_is_a_response_error() -> None:
    with pytest.raises(ResponseError, match="without an image"):
        StreamAssembler().handle(SSEEvent(None, json.dumps({"type": COMPLETED})))


def test_several_completed_events_give_several_images() -> None:
    assembler = StreamAssembler()
    for _ in range(2):
        assembler.handle(SSEEvent(None, json.dumps({"type": COMPLETED, "b64_json": PNG_B64})))
    assert len(assembler.result().items) == 2
