"""The offline simulator: a loopback server that follows CometAPI's image-generation contract.

Tests, benchmarks and the keyless demo use it instead of the paid service. It validates
requests per model, returns base64 or expiring URL results, streams SSE previews, reports
usage, and injects faults on demand (rate limits, 5xx, resets, hangs, corrupt bodies). Every
response carries ``X-CometNB-Simulator: 1`` and every image is stamped SIMULATED, so it can
never pass for the real service.

Run it in a terminal with ``python -m cometnb.sim`` (``sim.cli``); in Python::

    with SimServer() as sim:
        client = Client(api_key="sim-any-key-for-the-simulator", base_url=sim.base_url)

The control API (:class:`SimServer`, :func:`use_if_keyless`) and the state it controls
(:class:`SimState`: configuration, the fault queue, the request log, URL files) are one module.
Handler threads and the test thread touch the state concurrently, so every mutable part sits
behind one lock that is only ever held for bookkeeping, never while sleeping or doing I/O.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Generic, TypeVar, cast, overload

from cometnb.sim.faults import FAULT_PARAMS, Fault
from cometnb.sim.lookups import QUOTA_PATH, Quota
from cometnb.sim.ratelimit import RateLimiter
from cometnb.sim.server import SimHandler, SimHTTPServer
from cometnb.sim.signing import SimSigner, signing_wanted
from cometnb.sim.state import SimState, svg_variant

__all__ = ["FAULT_KINDS", "SimServer", "leave_simulator", "use_if_keyless"]

FAULT_KINDS: tuple[str, ...] = tuple(FAULT_PARAMS)
PLACEHOLDER_KEY = "sim-offline-placeholder-key"
# Seconds the keyless simulator takes per image. `make demo` sets 4 so a newcomer sees the
# progress line, Cancel, the queue and (with --partial) previews arrive one by one; unset
# (tests, scripts) it answers at once.
LATENCY_ENV = "COMETNB_SIM_LATENCY"


def keyless_latency(explicit: float | None = None) -> float:
    """``explicit``, else ``$COMETNB_SIM_LATENCY`` (seconds), else 0."""
    if explicit is not None:
        return max(0.0, float(explicit))
    try:
        return max(0.0, float(os.environ.get(LATENCY_ENV, "") or 0.0))
    except ValueError:
        return 0.0


_STOP_WAIT = 5.0  # seconds stop() waits for threads in total

T = TypeVar("T")


class _OnState(Generic[T]):
    """A setting of :class:`SimServer` kept on its shared state, where the handler threads read
    it: tests and benchmarks change it on a running simulator. ``check`` converts or refuses a
    value before it is stored."""

    def __init__(self, doc: str, check: Callable[[Any], T] | None = None) -> None:
        self.__doc__ = doc
        self._check = check
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type | None = None) -> _OnState[T]: ...
    @overload
    def __get__(self, server: SimServer, owner: type | None = None) -> T: ...
    def __get__(self, server: SimServer | None, owner: type | None = None) -> T | _OnState[T]:
        if server is None:  # looked up on the class (help(), docs): the descriptor itself
            return self
        return cast(T, getattr(server._state, self._name))

    def __set__(self, server: SimServer, value: T) -> None:
        setattr(server._state, self._name, value if self._check is None else self._check(value))


class SimServer:
    """A simulated CometAPI on a loopback port.

    ``latency`` delays every generation request (concurrently: parallel requests overlap);
    ``url_ttl`` is how long dall-e URL results stay downloadable; ``api_key`` (when set) is the
    only key accepted; ``texture="photo"`` makes noisy, photo-sized images (~3 MB PNG at 1024²).
    ``sse_done`` appends ``data: [DONE]`` to streams; ``stream_passthrough=False`` answers
    ``stream: true`` with plain JSON (a proxy that ignores streaming). ``models`` replaces the
    served model names (default: every known model); names starting with one of
    ``model_prefixes`` are served too and behave like gpt-image-1. ``rpm`` / ``ipm`` limit
    requests / images per minute per key (a token bucket of ``burst`` / ``image_burst``,
    default one second's worth): over the limit a POST gets 429 with ``Retry-After``, and with
    ``ratelimit_headers=True`` every answer carries OpenAI's ``x-ratelimit-*-requests``
    headers (:mod:`cometnb.sim.ratelimit`). ``sign_c2pa=True`` (or ``$COMETNB_SIM_C2PA=1``)
    signs every final image with Content Credentials from a throwaway CA
    (:mod:`cometnb.sim.signing`; needs ``cometnb[c2pa]``); off by default.
    ``retired_gone=True`` (or setting :attr:`retired_gone` later) answers a model the registry
    marks shut down upstream with 404 ``model_not_found`` in OpenAI's error shape, as OpenAI
    does after a shutdown; off by default, since CometAPI's routing of them is unverified.
    ``svg="hostile"`` (or setting :attr:`svg` later) makes every SVG answer (gpt-image-2.6,
    ``output_format: "svg"``) carry a ``<script>``, an ``onload`` handler and a reference to a
    local file; ``"clean"`` (the default) is a plain drawing. A GIF answer has ``frame_count``
    frames of ``frame_duration_ms`` each (9 × 200 ms by default), within the API's shared
    pixel budget.

    Example::

        >>> with SimServer() as sim:
        ...     sim.fault("429", retry_after=0)          # the next request is rate-limited
        ...     sim.base_url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        url_ttl: float = 3600.0,
        api_key: str | None = None,
        texture: str = "smooth",
        svg: str = "clean",
        sse_done: bool = False,
        stream_passthrough: bool = True,
        models: Iterable[str] | None = None,
        model_prefixes: Iterable[str] = ("gpt-image", "sim-"),
        verbose: bool = False,
        rpm: float | None = None,
        ipm: float | None = None,
        burst: float | None = None,
        image_burst: float | None = None,
        ratelimit_headers: bool = False,
        sign_c2pa: bool | None = None,
        retired_gone: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._state = SimState(
            latency=latency,
            url_ttl=url_ttl,
            api_key=api_key,
            texture=texture,
            svg=svg,
            sse_done=sse_done,
            stream_passthrough=stream_passthrough,
            models=models,
            model_prefixes=model_prefixes,
            verbose=verbose,
            ratelimit=RateLimiter(
                rpm, ipm, burst=burst, image_burst=image_burst, headers=ratelimit_headers
            ),
            # Off unless asked (``sign_c2pa=True``, ``--c2pa`` or $COMETNB_SIM_C2PA=1).
            signer=SimSigner() if signing_wanted(sign_c2pa) else None,
        )
        self.retired_gone = retired_gone
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def quota(self) -> Quota:
        """The simulated account behind ``GET /user/quota`` (:mod:`cometnb.sim.lookups`): set
        ``total_usd``, ``used_usd``, ``key_remaining_usd``, or ``fault`` / ``delay`` to make the
        endpoint fail or answer slowly; ``asked`` counts the requests it had."""
        return self._state.quota

    @property
    def quota_url(self) -> str:
        """``http://HOST:PORT/user/quota``: what ``CometImg.balance_url`` takes."""
        return self.base_url.removesuffix("/v1") + QUOTA_PATH

    # --- settings that tests and benchmarks change on the fly ------------------------------

    retired_gone = _OnState[bool]("Whether retired model ids are answered with 404.")
    svg = _OnState[str](
        'What SVG answers hold: ``"clean"`` or ``"hostile"`` (script, onload, file link).',
        svg_variant,
    )
    latency = _OnState[float]("Seconds every generation request waits (they overlap).")
    url_ttl = _OnState[float]("Seconds a URL result stays downloadable.")
    extra_output_tokens = _OnState[int](
        "Output tokens billed per image above the real counts (a service billing more than "
        "the estimate: CometAPI's 1024² low sample reports 208 tokens, the formula 196).",
        int,
    )

    def __repr__(self) -> str:
        where = self.base_url if self._httpd else "not started"
        return f"SimServer({where})"

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> SimServer:
        """Bind the port and serve on a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._state.stopping.clear()
        httpd = SimHTTPServer((self.host, self.port), self._state, SimHandler)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._state.base_url = self.base_url
        # A short poll interval makes shutdown() return promptly.
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="cometnb-sim",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake hung handlers, close connections, join threads (bounded)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        deadline = time.monotonic() + _STOP_WAIT
        self._state.stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        httpd.join_connections(deadline)
        self._httpd = self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def signs_c2pa(self) -> bool:
        """True when final images carry Content Credentials (``sign_c2pa``)."""
        return self._state.signer is not None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: what ``COMETAPI_BASE_URL`` or ``Client(base_url=)`` takes."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # --- faults and observation -----------------------------------------------------------

    def fault(self, kind: str, times: int = 1, **params: Any) -> None:
        """Queue ``times`` faults of ``kind``; each generation POST consumes the next one.

        Kinds: ``"429"`` (``retry_after`` seconds, default 1; ``retry_after_date=True``;
        ``no_retry_after=True``; ``quota=True``), ``"500"``, ``"500_invalid"``, ``"502"``,
        ``"503"``, ``"504"``, ``"524"`` (``html=`` picks an HTML or JSON body), ``"reset"``,
        ``"hang"`` (``seconds``, default 30, then the connection is dropped),
        ``"truncated_json"``, ``"corrupt_b64"``, ``"non_image"``, ``"cut_stream"``
        (``abrupt=True`` drops the connection), ``"stream_error"``, ``"latency"``
        (``seconds``), ``"expired_url"``, ``"html_404"``, ``"moderation"``, and ``"http"``
        (``status``, ``body``, ``headers``: any answer). Content faults that do not apply to a
        request (``expired_url`` on a base64 result) are consumed without effect.
        """
        if times < 1:
            raise ValueError(f"times must be at least 1; got {times}")
        self._state.add_fault(Fault.make(kind, **params), times)

    @property
    def pending_faults(self) -> list[str]:
        """Kinds of the faults still queued, next first."""
        return [f.kind for f in self._state.pending_faults()]

    @property
    def request_count(self) -> int:
        """Generation POSTs received, faulted ones included (what could have been billed)."""
        return len(self._state.log())

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The bodies received, oldest first (never any header, so never the key).

        An edit (``/v1/images/edits``) is logged as its text fields plus ``_path`` and
        ``_parts``: per file part a dict of ``name``, ``filename``, ``content_type``, ``bytes``
        (its length, an int) and ``sha256``, never the bytes themselves; seedream references
        as ``_references`` (their count) instead of the data URIs.
        """
        return [body for _, body in self._state.log()]

    @property
    def log(self) -> list[tuple[float, dict[str, Any]]]:
        """``(time.monotonic() at arrival, body)`` per generation POST."""
        return self._state.log()

    @property
    def spans(self) -> list[tuple[float, float]]:
        """``(arrival, finished)`` monotonic times of every completed generation POST."""
        return self._state.spans()

    @property
    def rate_limited(self) -> list[tuple[float, dict[str, Any]]]:
        """``(arrival, body)`` of every POST the rate limiter refused (429), oldest first."""
        return self._state.refused()

    @property
    def downloads(self) -> int:
        """GET requests for URL results (``/v1/files/…``)."""
        return self._state.downloads

    @property
    def errors(self) -> list[str]:
        """Tracebacks of simulator bugs (should stay empty)."""
        return self._state.errors()

    @property
    def cache_stats(self) -> dict[str, int]:
        """Image-cache hits, misses and entries (benchmarks check the simulator stays cheap)."""
        cache = self._state.cache
        return {"hits": cache.hits, "misses": cache.misses, "entries": len(cache)}

    def reset(self) -> None:
        """Forget queued faults, the request log and stored files."""
        self._state.reset()


# --- the keyless demo ---------------------------------------------------------------------


class KeylessSimulator:
    """The keyless demo's simulator, a part of the session (``current().part(...)``): started
    once when first needed, stopped with the session (or at exit), never a module global."""

    def __init__(self) -> None:
        self._server: SimServer | None = None
        self._lock = threading.Lock()

    @property
    def server(self) -> SimServer | None:
        """The simulator if one was started (running or stopped), else ``None``."""
        return self._server

    def ensure(self, latency: float = 0.0) -> SimServer:
        """The running simulator, started if it is not, answering with ``latency``."""
        with self._lock:
            if self._server is None or not self._server.running:
                self._server = SimServer().start()
                atexit.register(self._server.stop)
            self._server.latency = latency
            return self._server

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the simulator (its own joins are bounded, so ``timeout`` is not needed)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()


def use_if_keyless(quiet: bool = False, latency: float | None = None) -> str:
    """Point cometnb at a background simulator when no API key is configured.

    Returns ``"real"`` (a key was found; nothing changes) or ``"simulator"``. The simulator's
    URL goes to the session's ``simulator_url`` rather than ``active().base_url``, which the magic
    overwrites with its traits before every cell; setting a key (``%cometimg_key``) ends it.
    ``latency`` is how long each image takes, in seconds (default ``$COMETNB_SIM_LATENCY``,
    else 0: instant); the demo uses a few seconds so progress and Cancel can be seen.

    Example::

        >>> use_if_keyless(quiet=True) in ("real", "simulator")
        True
    """
    from cometnb._core import settings as _settings

    key = _settings.resolve_api_key()
    if key and key != PLACEHOLDER_KEY:  # the placeholder is ours from an earlier call
        return "real"
    from cometnb._core.session import current

    server = current().part(KeylessSimulator).ensure(keyless_latency(latency))
    _settings.set_session_key(PLACEHOLDER_KEY)  # first: setting a key clears the URL
    _settings.use_simulator(server.base_url)
    if not quiet:
        print(
            "No CometAPI key found: using cometnb's offline simulator at "
            f"{server.base_url}. Images are synthetic (stamped SIMULATED), nothing is billed.\n"
            "To use the real service, set COMETAPI_KEY before starting Jupyter, "
            "or run %cometimg_key."
            + (
                f" It takes {server.latency:g} s per image, like a real service "
                f"({LATENCY_ENV}=0 for instant answers)."
                if server.latency
                else ""
            ),
            flush=True,
        )
    return "simulator"


def leave_simulator() -> bool:
    """Undo :func:`use_if_keyless`: forget the simulator URL and the placeholder key.

    ``%cometimg_key`` needs no call to this (setting a key leaves keyless mode by itself).
    Returns True when something changed.
    """
    from cometnb._core import settings as _settings

    changed = _settings.simulator_url() is not None
    _settings.use_simulator(None)
    if _settings.session_key() == PLACEHOLDER_KEY:
        _settings.set_session_key(None)
        changed = True
    return changed
