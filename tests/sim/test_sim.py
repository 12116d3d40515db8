"""The offline simulator, driven with plain httpx against its real loopback socket."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from conftest import SHARED_FIXTURES
from PIL import Image, ImageFilter, ImageStat, UnidentifiedImageError

from cometnb._core import settings as _settings
from cometnb._core.model_registry import CAPABILITIES, KNOWN_MODELS
from cometnb._core.session import current
from cometnb.sim import SimServer
from cometnb.sim import control as sim_module
from cometnb.sim.control import KeylessSimulator
from cometnb.sim.generation import to_json

FIXTURES = SHARED_FIXTURES
KEY = "sk-cometnb-test-7f3a9c2e51d04b86a1e0"


@pytest.fixture
def http(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as client:
        yield client
    assert sim.errors == []  # no simulator bug surfaced during the test


def generate(http: httpx.Client, **body: Any) -> httpx.Response:
    body.setdefault("prompt", "a lighthouse in a storm")
    body.setdefault("model", "gpt-image-1")
    return http.post("/images/generations", json=body)


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    image.load()
    return image


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- happy paths --------------------------------------------------------------------------


def test_gpt_image_shape_matches_fixture(http: httpx.Client) -> None:
    r = generate(http, model="gpt-image-2", size="1536x1024", quality="low", output_format="jpeg")
    assert r.status_code == 200
    assert r.headers["X-CometNB-Simulator"] == "1"
    body = r.json()
    sample = fixture_json("gpt-image-2.json")
    assert set(sample) <= set(body)
    assert set(sample["usage"]) <= set(body["usage"])
    assert set(body["data"][0]) == {"b64_json"}
    assert (body["size"], body["quality"], body["output_format"]) == ("1536x1024", "low", "jpeg")
    assert body["background"] == "opaque"
    image = decode(body["data"][0]["b64_json"])
    assert (image.format, image.size) == ("JPEG", (1536, 1024))


@pytest.mark.parametrize("model", sorted(CAPABILITIES))
def test_every_known_model_answers_with_an_image(
    sim: SimServer, http: httpx.Client, model: str
) -> None:
    r = generate(http, model=model)
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    if "url" in item:  # dall-e's default response_format
        assert item["url"].startswith(sim.base_url + "/files/")
        data = httpx.get(item["url"]).content
    else:
        data = base64.b64decode(item["b64_json"], validate=True)
    assert Image.open(io.BytesIO(data)).size == (1024, 1024)


def test_transparent_background_has_real_alpha(http: httpx.Client) -> None:
    for fmt in ("png", "webp"):
        body = generate(http, background="transparent", output_format=fmt).json()
        assert body["background"] == "transparent"
        image = decode(body["data"][0]["b64_json"])
        assert image.format == fmt.upper() and image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0  # a cut-out corner
        assert image.getpixel((512, 512))[3] == 255


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_format_is_honoured(http: httpx.Client, fmt: str) -> None:
    body = generate(http, output_format=fmt, output_compression=None).json()
    assert decode(body["data"][0]["b64_json"]).format == fmt.upper()
    assert body["output_format"] == fmt


def test_auto_size_and_quality_resolve_to_concrete_values(http: httpx.Client) -> None:
    body = generate(http, size="auto", quality="auto").json()
    assert (body["size"], body["quality"]) == ("1024x1024", "medium")
    assert decode(body["data"][0]["b64_json"]).size == (1024, 1024)


def test_flexible_gpt_image_2_size(http: httpx.Client) -> None:
    body = generate(http, model="gpt-image-2", size="2048x1152").json()
    assert decode(body["data"][0]["b64_json"]).size == (2048, 1152)
    assert body["size"] == "2048x1152"


def test_n_images_differ_and_usage_counts_them(http: httpx.Client) -> None:
    one = generate(http, n=1).json()
    three = generate(http, n=3).json()
    payloads = [d["b64_json"] for d in three["data"]]
    assert len(payloads) == 3 and len(set(payloads)) == 3
    assert three["usage"]["output_tokens"] == 3 * one["usage"]["output_tokens"]


def test_usage_grows_with_size_quality_and_prompt(http: httpx.Client) -> None:
    def tokens(**body: Any) -> dict[str, int]:
        usage = generate(http, **body).json()["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert usage["input_tokens_details"]["text_tokens"] == usage["input_tokens"]
        return {"in": usage["input_tokens"], "out": usage["output_tokens"]}

    low, high = tokens(quality="low"), tokens(quality="high")
    assert high["out"] > low["out"]
    assert tokens(quality="low", size="1536x1024")["out"] > low["out"]
    assert tokens(prompt="word " * 200)["in"] > tokens(prompt="cat")["in"]


def test_content_depends_on_the_prompt(http: httpx.Client) -> None:
    first = decode(generate(http, prompt="a blue whale").json()["data"][0]["b64_json"])
    second = decode(generate(http, prompt="a green frog").json()["data"][0]["b64_json"])
    again = decode(generate(http, prompt="a blue whale").json()["data"][0]["b64_json"])
    assert first.tobytes() != second.tobytes()
    assert first.tobytes() == again.tobytes()


def test_repeated_requests_hit_the_image_cache(sim: SimServer, http: httpx.Client) -> None:
    first = generate(http, prompt="cache me").json()["data"][0]["b64_json"]
    misses = sim.cache_stats["misses"]
    second = generate(http, prompt="cache me").json()["data"][0]["b64_json"]
    assert first == second
    assert sim.cache_stats["misses"] == misses
    assert sim.cache_stats["hits"] >= 1


def test_to_json_splices_base64_exactly_like_json_dumps() -> None:
    value = {
        "created": 1,
        "prompt": 'quotes " and \\ and ünïcode',
        "data": [{"b64_json": "QUJD" * 300, "revised_prompt": "x"}, {"b64_json": "RA=="}],
        "nested": {"b64_json": "RUY="},
    }
    assert to_json(value) == json.dumps(value).encode()


def test_photo_texture_makes_photo_sized_pngs() -> None:
    with SimServer(texture="photo") as sim:
        r = httpx.post(
            sim.base_url + "/images/generations",
            json={"model": "gpt-image-1", "prompt": "noise", "size": "1024x1024"},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )
    data = base64.b64decode(r.json()["data"][0]["b64_json"])
    assert len(data) > 2_000_000  # about 3 MB, like a real 1024² photo


def test_dall_e_3_url_result_matches_fixture_and_downloads(
    sim: SimServer, http: httpx.Client
) -> None:
    r = generate(http, model="dall-e-3", prompt="a paper boat", style="natural")
    body = r.json()
    sample = fixture_json("dall-e-3-url.json")
    assert set(body) == set(sample)
    assert set(body["data"][0]) == set(sample["data"][0])
    item = body["data"][0]
    assert item["revised_prompt"].startswith("a paper boat") and item["revised_prompt"] != (
        "a paper boat"
    )
    assert item["url"].endswith(".webp")
    download = httpx.get(item["url"])  # no Authorization: served like a CDN
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(download.content)).format == "WEBP"
    assert sim.downloads == 1


def test_dall_e_b64_json_has_no_usage_and_no_url(http: httpx.Client) -> None:
    body = generate(http, model="dall-e-2", size="256x256", response_format="b64_json").json()
    assert set(body) == {"created", "data"}
    assert set(body["data"][0]) == {"b64_json"}
    assert decode(body["data"][0]["b64_json"]).size == (256, 256)


def test_qwen_image_returns_b64_without_usage(http: httpx.Client) -> None:
    body = generate(http, model="qwen-image").json()
    assert set(body) == {"created", "data"}
    assert decode(body["data"][0]["b64_json"]).format == "PNG"


@pytest.mark.parametrize("model", ["sim-fast", "gpt-image-9"])
def test_prefixed_unknown_models_are_served_like_gpt_image(http: httpx.Client, model: str) -> None:
    body = generate(http, model=model).json()
    assert {"usage", "size", "quality", "background", "output_format"} <= set(body)


def test_unserved_model_gets_a_comet_error(http: httpx.Client) -> None:
    r = generate(http, model="flux-pro-unknown")
    assert r.status_code == 404
    error = r.json()["error"]
    assert set(error) == set(fixture_json("error-comet.json")["error"])
    assert error["type"] == "comet_api_error" and error["code"] == "model_not_found"
    assert re.search(r"\(request id: \w+\)$", error["message"])


def test_served_models_are_configurable() -> None:
    with SimServer(models=["dall-e-3"], model_prefixes=()) as sim:
        headers = {"Authorization": f"Bearer {KEY}"}
        url = sim.base_url + "/images/generations"
        refused = httpx.post(url, json={"model": "gpt-image-1", "prompt": "x"}, headers=headers)
        served = httpx.post(url, json={"model": "dall-e-3", "prompt": "x"}, headers=headers)
        listed = httpx.get(sim.base_url + "/models", headers=headers).json()
    assert refused.status_code == 404
    assert served.status_code == 200
    assert [m["id"] for m in listed["data"]] == ["dall-e-3"]


def test_models_endpoint_lists_known_models(http: httpx.Client) -> None:
    listed = {m["id"] for m in http.get("/models").json()["data"]}
    assert set(KNOWN_MODELS) <= listed


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_path_is_a_json_404(http: httpx.Client, method: str) -> None:
    r = http.request(method, "/images/nope", json={} if method == "POST" else None)
    assert r.status_code == 404
    assert r.headers["X-CometNB-Simulator"] == "1"
    assert "Invalid URL" in r.json()["error"]["message"]


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Token sk-123456789"])
def test_missing_or_malformed_auth_is_401(sim: SimServer, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = httpx.post(
        sim.base_url + "/images/generations",
        json={"model": "gpt-image-1", "prompt": "x"},
        headers=headers,
    )
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert sim.request_count == 1  # a refused request is still counted


def test_configured_key_is_enforced_and_never_echoed() -> None:
    with SimServer(api_key="sk-the-right-key-0123456789") as sim:
        url = sim.base_url + "/images/generations"
        body = {"model": "gpt-image-1", "prompt": "x"}
        wrong = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"})
        right = httpx.post(
            url, json=body, headers={"Authorization": "Bearer sk-the-right-key-0123456789"}
        )
    assert wrong.status_code == 401
    assert KEY not in wrong.text and KEY[3:] not in wrong.text
    assert "sk-***" in wrong.json()["error"]["message"]
    assert right.status_code == 200


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "qwen-image", "n": 2}, "n"),
        ({"model": "dall-e-3", "size": "512x512"}, "size"),
        ({"model": "gpt-image-1", "background": "transparent", "output_format": "jpeg"}, None),
        ({"model": "gpt-image-1", "style": "vivid"}, "style"),
        ({"model": "dall-e-2", "stream": True}, "stream"),
        ({"model": "gpt-image-1", "prompt": ""}, "prompt"),
        ({"model": "sim-any", "size": "8000x8000"}, "size"),
    ],
)
def test_invalid_requests_get_openai_shaped_400(
    http: httpx.Client, body: dict[str, Any], param: str | None
) -> None:
    r = generate(http, **body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    if param:
        assert error["param"] == param


def test_body_that_is_not_json_is_400(sim: SimServer, http: httpx.Client) -> None:
    r = http.post("/images/generations", content=b"{not json", headers={"Content-Type": "x"})
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]
    assert sim.requests == [{"_unparsed": "{not json"}]


# --- URL expiry ---------------------------------------------------------------------------


def test_url_results_expire_after_url_ttl(sim: SimServer, http: httpx.Client) -> None:
    sim.url_ttl = 0.3
    url = generate(http, model="dall-e-2").json()["data"][0]["url"]
    assert httpx.get(url).status_code == 200
    time.sleep(0.4)
    expired = httpx.get(url)
    assert expired.status_code == 403
    assert "<Error>" in expired.text


def test_oversized_body_is_413(sim: SimServer, http: httpx.Client) -> None:
    r = http.post("/images/generations", content=b"x" * (17 * 1024 * 1024))
    assert r.status_code == 413


def test_unknown_file_is_404(sim: SimServer) -> None:
    assert httpx.get(sim.base_url + "/files/nothing.png").status_code == 404


# --- streaming ----------------------------------------------------------------------------


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """(event, data) pairs of an SSE stream."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event"), fields["data"]))
    return events


def stream(http: httpx.Client, **body: Any) -> httpx.Response:
    return generate(http, stream=True, **body)


@pytest.mark.parametrize("partials", [0, 1, 3])
def test_stream_shape_matches_fixture(http: httpx.Client, partials: int) -> None:
    r = stream(http, partial_images=partials, size="1024x1536", quality="low")
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    sample = parse_sse((FIXTURES / "stream.txt").read_text())
    kinds = [e for e, _ in events]
    assert kinds == ["image_generation.partial_image"] * partials + ["image_generation.completed"]
    payloads = [json.loads(d) for _, d in events]
    for (event, data), payload in zip(sample, [payloads[0], payloads[-1]], strict=True):
        if event == payload["type"]:
            assert set(json.loads(data)) == set(payload)
    assert [p["partial_image_index"] for p in payloads[:-1]] == list(range(partials))
    final = payloads[-1]
    assert final["usage"]["output_tokens"] > 0 and final["size"] == "1024x1536"
    assert decode(final["b64_json"]).size == (1024, 1536)


def test_stream_keys_equal_the_fixture(http: httpx.Client) -> None:
    events = [json.loads(d) for _, d in parse_sse(stream(http, partial_images=1).text)]
    sample = [json.loads(d) for _, d in parse_sse((FIXTURES / "stream.txt").read_text())]
    assert [set(e) for e in events] == [set(s) for s in sample]


def edge_energy(image: Image.Image) -> float:
    edges = image.convert("L").filter(ImageFilter.FIND_EDGES)
    return float(ImageStat.Stat(edges).mean[0])


def test_partial_images_are_blurry_previews_of_the_final(http: httpx.Client) -> None:
    payloads = [json.loads(d) for _, d in parse_sse(stream(http, partial_images=2).text)]
    first, second, final = (decode(p["b64_json"]) for p in payloads)
    assert first.size == second.size == final.size
    assert edge_energy(first) < edge_energy(second) < edge_energy(final)


def test_sse_done_flag_appends_done() -> None:
    with SimServer(sse_done=True) as sim:
        r = httpx.post(
            sim.base_url + "/images/generations",
            json={"model": "gpt-image-1", "prompt": "x", "stream": True},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert r.text.rstrip().endswith("data: [DONE]")
    assert "image_generation.completed" in r.text


def test_without_stream_passthrough_streams_come_back_as_json() -> None:
    with SimServer(stream_passthrough=False) as sim:
        r = httpx.post(
            sim.base_url + "/images/generations",
            json={"model": "gpt-image-1", "prompt": "x", "stream": True, "partial_images": 2},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert r.headers["content-type"] == "application/json"
    assert "usage" in r.json()


def test_stream_latency_is_spread_over_events(sim: SimServer, http: httpx.Client) -> None:
    sim.latency = 0.6
    arrivals = []
    start = time.monotonic()
    with http.stream(
        "POST",
        "/images/generations",
        json={"model": "gpt-image-1", "prompt": "x", "stream": True, "partial_images": 2},
    ) as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 3
    assert arrivals[-1] >= 0.6  # the whole latency was spent before the final image


# --- faults -------------------------------------------------------------------------------


def test_fault_queue_is_consumed_in_order(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("503", times=2)
    sim.fault("500")
    assert sim.pending_faults == ["503", "503", "500"]
    statuses = [generate(http).status_code for _ in range(4)]
    assert statuses == [503, 503, 500, 200]
    assert sim.request_count == 4  # faulted requests count: they may have been billed
    assert sim.pending_faults == []


def test_unknown_fault_kind_or_parameter_fails_loudly(sim: SimServer) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sim.fault("418")
    with pytest.raises(TypeError, match="retry_after"):
        sim.fault("429", retry_afer=1)
    with pytest.raises(ValueError):
        sim.fault("500", times=0)


def test_429_sends_retry_after_seconds(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("429")
    sim.fault("429", retry_after=7)
    first, second = generate(http), generate(http)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "1")
    assert second.headers["Retry-After"] == "7"
    error = first.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "(request id:" in error["message"]
    assert generate(http).status_code == 200


def test_429_retry_after_as_http_date(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("429", retry_after=30, retry_after_date=True)
    r = generate(http)
    when = parsedate_to_datetime(r.headers["Retry-After"])
    assert when.timestamp() > time.time() + 20


def test_429_without_retry_after(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("429", no_retry_after=True)
    r = generate(http)
    assert r.status_code == 429 and "Retry-After" not in r.headers


def test_429_quota_exhausted(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("429", quota=True)
    r = generate(http)
    error = r.json()["error"]
    assert r.status_code == 429 and error["code"] == "insufficient_quota"
    assert "quota" in error["message"] and "Retry-After" not in r.headers


def test_500_bodies_are_comet_errors(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("500")
    sim.fault("500_invalid")
    plain, invalid = generate(http), generate(http)
    sample = fixture_json("error-comet.json")["error"]
    for r in (plain, invalid):
        assert r.status_code == 500
        assert set(r.json()["error"]) == set(sample)
        assert r.json()["error"]["type"] == "comet_api_error"
        assert r.json()["error"]["message"].endswith(")")
    assert invalid.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("502", "text/html"), ("503", "application/json"), ("504", "text/html")],
)
def test_gateway_faults(sim: SimServer, http: httpx.Client, kind: str, content_type: str) -> None:
    sim.fault(kind)
    r = generate(http)
    assert r.status_code == int(kind)
    assert r.headers["content-type"].startswith(content_type)
    assert r.headers["X-CometNB-Simulator"] == "1"


def test_524_is_cloudflare_json_or_html(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("524")
    sim.fault("524", html=True)
    sim.fault("502", html=False)
    as_json, as_html, bad_gateway = generate(http), generate(http), generate(http)
    assert as_json.status_code == 524
    assert as_json.json()["error"]["type"] == "cf_gateway_timeout"
    assert "Error code 524" in as_html.text
    assert bad_gateway.json()["error"]["type"] == "comet_api_error"


def test_reset_drops_the_connection_without_a_response(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("reset")
    with pytest.raises(httpx.TransportError):
        generate(http)
    assert generate(http).status_code == 200  # the next request is served normally
    assert sim.request_count == 2


def test_hang_times_out_the_client(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("hang", seconds=30)
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        http.post("/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, timeout=0.5)
    assert time.monotonic() - start >= 0.5


def test_stop_wakes_a_hung_handler() -> None:
    sim = SimServer().start()
    sim.fault("hang", seconds=120)
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            r = httpx.post(
                sim.base_url + "/images/generations",
                json={"model": "gpt-image-1", "prompt": "x"},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=60,
            )
            outcome.append(r.status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while sim.request_count == 0:
        time.sleep(0.01)
    sim.stop()
    caller.join(30)  # far below the 120 s hang: stop() must have woken the handler
    assert not caller.is_alive()
    assert isinstance(outcome[0], httpx.TransportError)
    assert not [t for t in threading.enumerate() if t.name.startswith("cometnb-sim")]


def test_truncated_json_is_a_complete_response_with_a_cut_body(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.fault("truncated_json")
    r = generate(http)
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == len(r.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_corrupt_b64_fails_strict_and_lenient_decoders(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("corrupt_b64")
    text = generate(http).json()["data"][0]["b64_json"]
    with pytest.raises(binascii.Error):
        base64.b64decode(text, validate=True)
    with pytest.raises(binascii.Error):
        base64.b64decode(text)


def test_non_image_is_valid_base64_of_other_bytes(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("non_image")
    data = base64.b64decode(generate(http).json()["data"][0]["b64_json"], validate=True)
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(data))


def test_non_image_behind_a_url(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("non_image")
    url = generate(http, model="dall-e-2").json()["data"][0]["url"]
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(httpx.get(url).content))


def test_expired_url_fault(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("expired_url")
    url = generate(http, model="dall-e-3").json()["data"][0]["url"]
    assert httpx.get(url).status_code == 403


def test_cut_stream_ends_after_the_first_partial(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("cut_stream")
    events = parse_sse(stream(http, partial_images=3).text)
    assert [e for e, _ in events] == ["image_generation.partial_image"]


def test_abrupt_cut_stream_breaks_the_transfer(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("cut_stream", abrupt=True)
    with pytest.raises(httpx.TransportError):
        stream(http, partial_images=2)


def test_stream_error_sends_an_error_object(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("stream_error")
    events = parse_sse(stream(http, partial_images=2).text)
    assert events[0][0] == "image_generation.partial_image"
    assert len(events) == 2
    error = json.loads(events[1][1])["error"]
    assert {"message", "type", "code"} <= set(error)


def test_truncated_json_in_a_stream_cuts_the_completed_event(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.fault("truncated_json")
    events = parse_sse(stream(http, partial_images=1).text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[-1][1])


def test_latency_fault_delays_one_request(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("latency", seconds=0.4)
    start = time.monotonic()
    assert generate(http).status_code == 200
    assert time.monotonic() - start >= 0.4


def test_html_404_fault(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("html_404")
    r = generate(http)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "<html>" in r.text


def test_moderation_fault_matches_fixture(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("moderation")
    sim.fault("moderation")
    gpt, dalle = generate(http), generate(http, model="dall-e-3")
    assert gpt.status_code == dalle.status_code == 400
    assert gpt.json() == fixture_json("error-moderation.json")
    assert dalle.json()["error"]["code"] == "content_policy_violation"


def test_http_fault_answers_anything(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("http", status=403, body={"error": {"message": "region blocked"}}, headers={"X": "1"})
    r = generate(http)
    assert (r.status_code, r.headers["X"]) == (403, "1")
    assert r.json()["error"]["message"] == "region blocked"


def test_requests_log_holds_bodies_only(sim: SimServer, http: httpx.Client) -> None:
    sim.fault("500")
    generate(http, prompt="one")
    generate(http, prompt="two")
    assert [b["prompt"] for b in sim.requests] == ["one", "two"]
    assert all(KEY not in json.dumps(body) for body in sim.requests)
    assert [t for t, _ in sim.log] == sorted(t for t, _ in sim.log)
    sim.reset()
    assert sim.request_count == 0 and sim.requests == []


# --- concurrency and life cycle -----------------------------------------------------------


def test_latency_is_concurrent() -> None:
    with SimServer(latency=1.0) as sim:
        headers = {"Authorization": f"Bearer {KEY}"}

        def call(i: int) -> int:
            body = {"model": "gpt-image-1", "prompt": f"p{i}"}
            r = httpx.post(sim.base_url + "/images/generations", json=body, headers=headers)
            return r.status_code

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(8)))
        elapsed = time.monotonic() - start
        spans = sim.spans
    assert statuses == [200] * 8
    assert elapsed >= 1.0
    # Every request arrived before the first one finished: they were served in parallel.
    assert max(s for s, _ in spans) < min(e for _, e in spans)


def test_stop_closes_keep_alive_connections_and_threads() -> None:
    sim = SimServer().start()
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as keep_alive:
        body = {"model": "gpt-image-1", "prompt": "x"}
        assert keep_alive.post(sim.base_url + "/images/generations", json=body).is_success
        sim.stop()  # the idle keep-alive connection must not keep a thread alive
        assert not [t for t in threading.enumerate() if t.name.startswith("cometnb-sim")]
    assert not sim.running
    sim.stop()  # idempotent


def test_context_manager_and_restart() -> None:
    sim = SimServer()
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    with sim:
        assert sim.base_url.startswith("http://127.0.0.1:")
        assert "127.0.0.1" in repr(sim)
    assert not sim.running
    assert sim.errors == []


# --- command line -------------------------------------------------------------------------


def test_cli_prints_the_url_and_serves() -> None:
    command = [sys.executable, "-m", "cometnb.sim", "--port", "0"]
    lines: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
        reader.start()
        try:
            deadline = time.monotonic() + 30
            while not any("Ctrl+C" in line for line in lines) and time.monotonic() < deadline:
                time.sleep(0.05)
            banner = "".join(lines)
            url = re.search(r"COMETAPI_BASE_URL=(\S+)", banner)
            assert url, banner
            assert "SYNTHETIC" in banner and "COMETAPI_KEY=" in banner
            r = httpx.post(
                url.group(1) + "/images/generations",
                json={"model": "gpt-image-1", "prompt": "cli"},
                headers={"Authorization": "Bearer sim-demo"},
            )
            assert r.status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            reader.join(15)
    assert "stopped" in "".join(lines)


# --- use_if_keyless -----------------------------------------------------------------------


def _keyless() -> KeylessSimulator:
    """This test's session's keyless simulator (the session fixture gives each test its own)."""
    return current().part(KeylessSimulator)


@pytest.fixture
def background() -> Iterator[None]:
    """Stop this test's background simulator afterwards (the session's close does too)."""
    yield
    _keyless().stop()


def test_use_if_keyless_starts_the_simulator_once(
    background: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim_module.use_if_keyless() == "simulator"
    notice = capsys.readouterr().out
    assert "simulator" in notice and "synthetic" in notice
    assert "COMETAPI_KEY" in notice and "%cometimg_key" in notice
    base_url = _settings.resolve_base_url()
    assert base_url.startswith("http://127.0.0.1:")
    key = _settings.resolve_api_key()
    assert key and key.startswith("sim-")
    r = httpx.post(
        base_url + "/images/generations",
        json={"model": "gpt-image-1", "prompt": "demo"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.headers["X-CometNB-Simulator"] == "1"
    assert sim_module.use_if_keyless(quiet=True) == "simulator"
    assert capsys.readouterr().out == ""
    assert _settings.resolve_base_url() == base_url  # the same server is reused


def test_keyless_latency_is_public_and_configurable(
    background: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMETNB_SIM_LATENCY", "2.5")  # what make demo sets (it uses 4)
    assert sim_module.use_if_keyless() == "simulator"
    server = _keyless().server
    assert server is not None and server.latency == 2.5
    assert "2.5 s per image" in capsys.readouterr().out
    assert sim_module.use_if_keyless(quiet=True, latency=0) == "simulator"
    assert server.latency == 0  # explicit wins; tests stay instant
    monkeypatch.setenv("COMETNB_SIM_LATENCY", "soon")
    assert sim_module.keyless_latency() == 0.0  # a bad value never breaks the demo


def test_keyless_mode_survives_front_ends_copying_settings(background: None) -> None:
    assert sim_module.use_if_keyless(quiet=True) == "simulator"
    url = _settings.resolve_base_url()
    _settings.active().base_url = None  # what the magic does with an empty trait
    assert _settings.resolve_base_url() == url


def test_setting_a_key_leaves_the_simulator(background: None) -> None:
    assert sim_module.use_if_keyless(quiet=True) == "simulator"
    _settings.set_session_key(KEY)  # what %cometimg_key does
    assert _settings.resolve_base_url() == _settings.DEFAULT_BASE_URL
    assert _settings.resolve_api_key() == KEY
    assert sim_module.use_if_keyless() == "real"


def test_leave_simulator_undoes_keyless_mode(background: None) -> None:
    assert sim_module.use_if_keyless(quiet=True) == "simulator"
    assert sim_module.leave_simulator()
    assert _settings.resolve_base_url() == _settings.DEFAULT_BASE_URL
    assert _settings.resolve_api_key() is None
    assert not sim_module.leave_simulator()


def test_use_if_keyless_with_a_key_changes_nothing(
    background: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(_settings.KEY_ENV, KEY)
    assert sim_module.use_if_keyless() == "real"
    assert _settings.resolve_base_url() == _settings.DEFAULT_BASE_URL
    assert capsys.readouterr().out == ""
    assert _keyless().server is None


# --- the reference client agrees ----------------------------------------------------------


def test_the_openai_sdk_parses_every_shape(sim: SimServer) -> None:
    """openai-python is the reference parser of this contract: results, streams and errors."""
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)
    try:
        result = sdk.images.generate(model="gpt-image-1", prompt="a cat", quality="low")
        assert result.usage.output_tokens > 0 and result.size == "1024x1024"
        dalle = sdk.images.generate(model="dall-e-3", prompt="a cat")
        assert dalle.data[0].url and dalle.data[0].revised_prompt
        events = sdk.images.generate(
            model="gpt-image-1", prompt="a cat", stream=True, partial_images=2
        )
        assert [e.type for e in events][-1] == "image_generation.completed"
        sim.fault("stream_error")
        with pytest.raises(openai.APIError, match="failed upstream"):
            list(sdk.images.generate(model="gpt-image-1", prompt="x", stream=True))
        sim.fault("429")
        with pytest.raises(openai.RateLimitError):
            sdk.images.generate(model="gpt-image-1", prompt="a cat")
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.images.generate(model="qwen-image", prompt="a cat", n=2)
        assert refused.value.param == "n"
    finally:
        sdk.close()
