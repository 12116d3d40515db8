"""The simulator's HTTP server and its request handler: plumbing and routes.

:class:`SimHTTPServer` is a threading server that tracks its connections; every connection runs
on its own thread so latency is concurrent. :class:`SimHandlerBase` sends, reads and waits the
way every route needs (waits use ``SimState.stopping`` so a hung or slow handler wakes as soon
as the server stops); :class:`SimHandler` holds the routes: generations and edits (with their
faults and streams), file downloads and the model list. What a valid request gets back is
decided in ``sim.generation``; faults are answered from ``sim.faults``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cometnb._core.errors import ValidationError
from cometnb._core.validation import validate_request
from cometnb.sim import faults
from cometnb.sim.edits import (
    EditInputs,
    EditRefused,
    MultipartError,
    check_edit,
    form_request,
    json_references,
    parse_form,
)
from cometnb.sim.faults import HTML, Fault, fault_body, retry_headers, stream_error_event
from cometnb.sim.generation import (
    JSON,
    SimJob,
    cdn_error,
    comet_error,
    error_body,
    json_result,
    moderation_error,
    parse_job,
    stream_events,
    to_json,
)
from cometnb.sim.lookups import QUOTA_PATH, catalog_body, hide_key
from cometnb.sim.lookups import answer as quota_answer
from cometnb.sim.ratelimit import Admission

if TYPE_CHECKING:
    from cometnb.sim.state import SimState

__all__ = ["MAX_BODY", "SimHTTPServer", "SimHandler", "SimHandlerBase"]

MAX_BODY = 16 * 1024 * 1024  # larger bodies get 413 (CometAPI lists it)


class SimHTTPServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its live connections, so ``stop()`` can close them
    (waking keep-alive readers) and join their threads with a bounded wait.

    Example::

        >>> from cometnb.sim.server import SimHandler
        >>> httpd = SimHTTPServer(("127.0.0.1", 0), SimState(), SimHandler)
        >>> httpd.server_close()
    """

    daemon_threads = True
    block_on_close = False  # we join ourselves, with a deadline
    request_queue_size = 128  # the default 5 drops SYNs when a benchmark opens 16 at once

    def __init__(
        self,
        address: tuple[str, int],
        state: SimState,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        self.state = state
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="cometnb-sim-conn",
            daemon=True,
        )
        with self._conn_lock:
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is normal; anything else is a simulator bug.
        if isinstance(sys.exc_info()[1], OSError):
            return
        self.state.note_error(traceback.format_exc())

    def close_connections(self) -> None:
        """Shut down every live connection's socket (their reader threads wake and end)."""
        with self._conn_lock:
            sockets = list(self._conns)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_connections(self, deadline: float) -> list[threading.Thread]:
        """Join connection threads until ``deadline``; return the ones still alive."""
        with self._conn_lock:
            threads = list(self._conns.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]


class SimHandlerBase(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with the simulator's marker header on every response, quiet logs,
    bounded body reads, stoppable waits and chunked writes."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real service
    server_version = "cometnb-sim"
    timeout = 300  # seconds an idle keep-alive connection is kept
    server: SimHTTPServer
    _responded = False  # a status line went out for the current request
    limit_headers: dict[str, str] | None = None  # the rate limiter's headers for this answer

    @property
    def state(self) -> SimState:
        return self.server.state

    def send_response(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response(code, message)
        self.send_header("X-CometNB-Simulator", "1")
        for name, value in (self.limit_headers or {}).items():
            self.send_header(name, value)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only (never headers; the quota route's key=… starred), when asked.
        if self.state.verbose:
            super().log_message(format, *(hide_key(str(a)) for a in args))

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = JSON,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body; ``None`` (after answering 400 or 413) when it cannot be read."""
        raw = (self.headers.get("Content-Length") or "0").strip()
        # "abc", "-5", "1e3": a real server answers 400; it must not crash the handler.
        if not (raw.isascii() and raw.isdigit()):
            self.close_connection = True
            message = f"Invalid Content-Length header: {raw[:20]!r}"
            self._send(400, error_body(message, "invalid_request_error"))
            return None
        length = int(raw)
        if length > MAX_BODY:
            # Drain what was sent (up to a bound) so the client reads the 413 instead of
            # failing its write on a reset connection.
            remaining = min(length, 4 * MAX_BODY)
            while remaining > 0 and self.rfile.read(min(remaining, 1 << 20)):
                remaining -= 1 << 20
            self.close_connection = True
            self._send(413, error_body("Request body too large.", "invalid_request_error"))
            return None
        return self.rfile.read(length) if length else b""

    def _wait(self, seconds: float) -> bool:
        """Sleep without blocking other requests; False when the server is stopping."""
        if seconds > 0 and self.state.stopping.wait(seconds):
            self.close_connection = True
            return False
        return not self.state.stopping.is_set()

    def _chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


_GENERATIONS = "/v1/images/generations"
_EDITS = "/v1/images/edits"
_FILES = "/v1/files/"
_STATUS_FAULTS = {"429", "500", "500_invalid", "502", "503", "504", "524", "html_404", "http"}


class SimHandler(SimHandlerBase):
    """Routes: ``POST /v1/images/generations`` and ``/v1/images/edits``, ``GET /v1/files/<name>``,
    ``GET /v1/models``, ``GET /api/models`` (the price catalog), ``GET /user/quota`` (the
    account's balance, :mod:`cometnb.sim.lookups`)."""

    _on_edits = False  # set per request by do_POST

    # --- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith(_FILES + faults.DOWNLOAD_PREFIX):
            name = path[len(_FILES) :]
            faults.download(self, self.state.stopping, name, urlsplit(self.path).query)
        elif path.startswith(_FILES):
            self._download(path[len(_FILES) :])
        elif path.rstrip("/") == "/v1/models":
            if self._authorized():
                self._models()
        elif path.rstrip("/") == "/api/models":  # CometAPI's public price catalog: no key
            self._send(200, json.dumps(catalog_body(self.state.models)).encode())
        elif path.rstrip("/") == QUOTA_PATH:  # the account's balance: the key in the query
            self._quota(urlsplit(self.path).query)
        else:
            self._not_found("GET", path)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        if raw is None:
            return
        # Edit-only models are served on the edits route alone (a generation of one is a 404).
        self._on_edits = path.rstrip("/") == _EDITS
        if path.rstrip("/") == _GENERATIONS:
            self._generation(raw)
        elif path.rstrip("/") == _EDITS:
            self._edit(raw)
        else:
            self._not_found("POST", path)

    def _quota(self, query: str) -> None:
        quota = self.state.quota
        if quota.fault == "slow":
            self.state.stopping.wait(quota.delay)
        status, body, content_type = quota_answer(quota, query, self.state.api_key)
        self._send(status, body, content_type)

    def _not_found(self, method: str, path: str) -> None:
        message = f"Invalid URL ({method} {path})"
        self._send(404, error_body(message, "invalid_request_error"))

    def _models(self) -> None:
        names = sorted(self.state.models)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "cometnb-sim"} for m in names
        ]
        self._send(200, json.dumps({"object": "list", "data": data}).encode())

    def _download(self, name: str) -> None:
        found = self.state.get_file(name)
        if found is None:
            body = cdn_error("BlobNotFound", "The specified blob does not exist.")
            self._send(404, body, "application/xml")
        elif found.expired:
            message = "Server failed to authenticate the request. Signed expiry time has passed."
            self._send(403, cdn_error("AuthenticationFailed", message), "application/xml")
        else:
            self._send(200, found.data, found.mime, {"Cache-Control": "private, max-age=3600"})

    def _authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        expected = self.state.api_key
        if scheme.lower() == "bearer" and token and (expected is None or token == expected):
            return True
        # Never echo the key: at most its first three characters.
        shown = f"{token[:3]}***" if len(token) > 8 else "***"
        if not token:
            message = "Missing API key: send the header 'Authorization: Bearer <key>'"
        else:
            message = f"Invalid token: {shown}"
        self._send(401, comet_error(message, "invalid_api_key"))
        return False

    # --- generation -----------------------------------------------------------------------

    def _generation(self, raw: bytes) -> None:
        body = _parse(raw)
        logged: dict[str, Any] = (
            body if body is not None else {"_unparsed": raw[:200].decode("utf-8", "replace")}
        )
        inputs, refusal = None, None
        if body is not None and "image" in body:  # seedream's references, as data URIs
            refs = body["image"]
            logged = {k: v for k, v in body.items() if k != "image"}  # not megabytes of base64
            logged.update(
                _path=_GENERATIONS, _references=len(refs) if isinstance(refs, list) else 1
            )
            try:
                inputs = json_references(body)
            except EditRefused as exc:
                refusal = exc
        self._serve(body, logged, inputs, refusal)

    def _edit(self, raw: bytes) -> None:
        """``/v1/images/edits``: multipart; the log keeps every part's name, type, size and hash."""
        body: dict[str, Any] = {}
        inputs, refusal = None, None
        try:
            form = parse_form(self.headers.get("Content-Type"), raw)
            parts = [p.summary() for p in form.files]
            body, inputs = form_request(form)
        except MultipartError as exc:
            parts, refusal = [], EditRefused(str(exc), None, "invalid_multipart")
        except EditRefused as exc:
            refusal = exc
            body = {k: v for k, v in form.fields.items()}
        self._serve(body, {**body, "_path": _EDITS, "_parts": parts}, inputs, refusal)

    def _serve(
        self,
        body: dict[str, Any] | None,
        logged: dict[str, Any],
        inputs: EditInputs | None,
        refusal: EditRefused | None,
    ) -> None:
        started, fault, admission = self.state.arrive(logged, self._bearer())
        self._responded = False
        self.limit_headers = admission.headers if admission else None
        try:
            if admission is not None and not admission.allowed:
                self._rate_limited(admission)
            else:
                self._generate(body, fault, inputs, refusal)
        except OSError:
            self.close_connection = True  # the client went away
        except Exception:
            self.state.note_error(traceback.format_exc())
            self.close_connection = True
            if not self._responded:  # mid-stream, dropping the connection is all we can do
                self._send(500, comet_error("cometnb simulator internal error"))
        finally:
            self.limit_headers = None
            self.state.finish(started)

    def _bearer(self) -> str:
        """The bearer token (the rate limiter's key; it only ever sees a hash of it)."""
        return self.headers.get("Authorization", "").partition(" ")[2].strip()

    def _rate_limited(self, admission: Admission) -> None:
        """429 at once, as a gateway's limiter answers: no latency, no generation."""
        if admission.limited_by == "images":
            message = "Rate limit reached for images per minute, please retry later"
        else:
            message = "Rate limit reached for requests per minute, please retry later"
        body = comet_error(message, "rate_limit_exceeded")
        self._send(429, body, headers={"Retry-After": admission.retry_after_header()})

    def _generate(
        self,
        body: dict[str, Any] | None,
        fault: Fault | None,
        inputs: EditInputs | None = None,
        refusal: EditRefused | None = None,
    ) -> None:
        kind = fault.kind if fault else None
        params = fault.params if fault else {}
        delay = self.state.latency + (float(params.get("seconds", 1.0)) if kind == "latency" else 0)
        if not self._streams(body) and not self._wait(delay):
            return
        if not self._authorized() or self._answer_fault(kind, params, body):
            return
        if refusal is not None:
            error = error_body(
                refusal.message, "invalid_request_error", refusal.param, refusal.code
            )
            self._send(400, error)
            return
        job = self._checked_job(body, inputs)
        if job is None:
            return
        self.state.quota.charge(body or {})  # the account pays for what is answered
        if job.stream and self.state.stream_passthrough:
            self._stream(job, kind, params, delay)
            return
        result = to_json(json_result(job, self.state, kind))
        if kind == "truncated_json":
            result = result[: max(1, len(result) // 2)]  # Content-Length matches: a clean cut
        self._send(200, result)

    def _answer_fault(
        self, kind: str | None, params: dict[str, Any], body: dict[str, Any] | None
    ) -> bool:
        """Answer (or refuse to answer) instead of generating; False for no such fault."""
        if kind == "reset":
            self._reset()
        elif kind == "hang":
            self._wait(float(params.get("seconds", 30.0)))
            self.close_connection = True  # then drop the connection, never answering
        elif kind == "moderation":
            model = str((body or {}).get("model", ""))
            self._send(400, moderation_error(self.state.family(model)))
        elif kind in _STATUS_FAULTS:
            self._status_fault(str(kind), params)
        elif kind in faults.HOSTILE_PARAMS:
            faults.answer(self, self.state.stopping, kind, params)
        else:
            return False
        return True

    def _streams(self, body: dict[str, Any] | None) -> bool:
        if not body or body.get("stream") is not True or not self.state.stream_passthrough:
            return False
        model = body.get("model")
        return isinstance(model, str) and self.state.family(model) == "gpt-image"

    def _checked_job(
        self, body: dict[str, Any] | None, inputs: EditInputs | None = None
    ) -> SimJob | None:
        """Refuse what the real service refuses (answering the error); else parse the job."""
        if body is None:
            message = "We could not parse the JSON body of your request. Send valid JSON."
            self._send(400, error_body(message, "invalid_request_error"))
            return None
        model = body.get("model")
        if isinstance(model, str) and self.state.gone(model):
            message = f"The model `{model}` does not exist or you do not have access to it."
            self._send(404, error_body(message, "invalid_request_error", None, "model_not_found"))
            return None
        served = isinstance(model, str) and self.state.serves(model, edits=self._on_edits)
        if isinstance(model, str) and model.strip() and not served:
            message = f"model {model} is not available: no channel serves it"
            self._send(404, comet_error(message, "model_not_found"))
            return None
        fields = {k: v for k, v in body.items() if k not in ("prompt", "model", "image")}
        try:
            validate_request(body.get("prompt"), model, fields)
            if inputs is not None:
                check_edit(body, inputs)  # the client's own edit rules (API_FACTS §7)
            return parse_job(body, self.state.family(str(model)), inputs)
        except ValidationError as exc:
            body_ = error_body(exc.message, "invalid_request_error", exc.field, "invalid_value")
        except ValueError as exc:
            body_ = error_body(str(exc), "invalid_request_error", "size", "invalid_value")
        self._send(400, body_)
        return None

    # --- faults ---------------------------------------------------------------------------

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the client gets a TCP reset and no response at all."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _status_fault(self, kind: str, params: dict[str, Any]) -> None:
        headers = retry_headers(kind, params)
        if kind == "http":
            status = int(params.get("status", 500))
            payload = params.get("body", {"error": {"message": "simulated error"}})
            if isinstance(payload, str):
                return self._send(status, payload.encode(), HTML, headers)
            extra = {str(k): str(v) for k, v in dict(params.get("headers") or {}).items()}
            return self._send(status, json.dumps(payload).encode(), JSON, headers | extra)
        status, body, content_type = fault_body(kind, params)
        self._send(status, body, content_type, headers)

    # --- streaming ------------------------------------------------------------------------

    def _stream(self, job: SimJob, kind: str | None, params: dict[str, Any], delay: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Latency is spread over the events, so previews arrive before the final image.
        step = delay / max(1, job.n * (job.partials + 1))
        cut_at = 1 if job.partials else 0  # events sent before a cut or an error
        for index, event in enumerate(stream_events(job, self.state, kind)):
            if kind in ("cut_stream", "stream_error") and index == cut_at:
                break
            if not self._wait(step):
                return  # stopping: drop the connection mid-stream
            self._chunk(event)
        if kind == "cut_stream" and params.get("abrupt"):
            self.close_connection = True
            return
        if kind == "stream_error":
            self._chunk(stream_error_event())
        elif self.state.sse_done and kind != "cut_stream":
            self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
