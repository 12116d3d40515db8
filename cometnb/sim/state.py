"""The simulator's shared state: configuration, the fault queue, the request log, URL files.

Handler threads and the test thread touch it concurrently, so every mutable part sits behind
one lock that is only ever held for bookkeeping, never while sleeping or doing I/O.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cometnb._core.model_registry import CAPABILITIES, EDIT_CAPABILITIES, get_caps, model_info
from cometnb.sim.faults import Fault
from cometnb.sim.images import ImageCache, shared_cache
from cometnb.sim.lookups import LATER_MODELS, Quota
from cometnb.sim.ratelimit import Admission, RateLimiter
from cometnb.sim.signing import SimSigner

__all__ = ["EDIT_ONLY", "SVG_VARIANTS", "HostedFile", "SimState", "svg_variant"]

# What an SVG answer holds: a plain drawing, or one that also carries a script, an onload
# handler and a reference to a local file (what cometnb must never let run or load).
SVG_VARIANTS = ("clean", "hostile")


def svg_variant(value: str) -> str:
    """``value`` when it is one of :data:`SVG_VARIANTS`; else a :class:`ValueError`."""
    if value not in SVG_VARIANTS:
        raise ValueError(f"svg must be 'clean' or 'hostile'; got {value!r}")
    return value


_MAX_FILES = 512  # URL results kept for download; older ones are forgotten (404)


# Models that only edit (API_FACTS §7: qwen-image-edit, SeedEdit via /v1/images/edits), with the
# response family they answer like; their input rules come from the client's edit table.
EDIT_ONLY: dict[str, str] = {
    name: "seedream" if name.startswith("doubao-") else "qwen"
    for name, caps in EDIT_CAPABILITIES.items()
    if caps.can_edit and caps.route == "multipart" and name not in CAPABILITIES
}


@dataclass
class HostedFile:
    """A URL result: the bytes, their MIME type and when the URL stops working."""

    data: bytes
    mime: str
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


class SimState:
    """Configuration and bookkeeping shared by the handler threads (see :class:`SimServer`)."""

    def __init__(
        self,
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
        cache: ImageCache | None = None,
        ratelimit: RateLimiter | None = None,
        signer: SimSigner | None = None,
    ) -> None:
        if texture not in ("smooth", "photo"):
            raise ValueError(f"texture must be 'smooth' or 'photo'; got {texture!r}")
        self.latency = latency
        self.retired_gone = False  # answer retired ids with 404 model_not_found (SimServer)
        self.quota = Quota()  # the account GET /user/quota reports (cometnb.sim.lookups)
        self.extra_output_tokens = 0  # billed per image above the real counts (tests)
        self.url_ttl = url_ttl
        self.api_key = api_key
        self.texture = texture
        # "hostile": SVG answers carry a script, onload and a file reference
        self.svg = svg_variant(svg)
        self.sse_done = sse_done
        self.stream_passthrough = stream_passthrough
        default = (*CAPABILITIES, *EDIT_ONLY, *LATER_MODELS)
        self.models = frozenset(default if models is None else models)
        self.model_prefixes = tuple(model_prefixes)
        self.verbose = verbose
        self.cache = cache if cache is not None else shared_cache()
        self.ratelimit = ratelimit if ratelimit is not None else RateLimiter()
        self.signer = signer  # Content Credentials on final images (``sign_c2pa``; off)
        self.stopping = threading.Event()
        self.base_url = ""
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._log: list[tuple[float, dict[str, Any]]] = []
        self._refused: list[tuple[float, dict[str, Any]]] = []  # by the rate limiter
        self._spans: list[tuple[float, float]] = []
        self._errors: list[str] = []
        self._files: OrderedDict[str, HostedFile] = OrderedDict()
        self._downloads = 0

    # --- models ---------------------------------------------------------------------------

    def serves(self, model: str, *, edits: bool = False) -> bool:
        """True for the configured models and any name with a served prefix; the edit-only
        models (:data:`EDIT_ONLY`) only on ``/v1/images/edits`` (``edits=True``)."""
        if model in EDIT_ONLY and not edits:
            return False
        return model in self.models or model.startswith(self.model_prefixes)

    def gone(self, model: str) -> bool:
        """True when :attr:`retired_gone` is on and the registry marks ``model`` retired."""
        info = model_info(model) if self.retired_gone else None
        return info is not None and info.status == "retired"

    @staticmethod
    def family(model: str) -> str:
        """The response family; served names the table does not know act like gpt-image-1."""
        caps = get_caps(model)
        return caps.family if caps else EDIT_ONLY.get(model, "gpt-image")

    # --- faults and the request log -------------------------------------------------------

    def add_fault(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def arrive(
        self, body: dict[str, Any], key: str = ""
    ) -> tuple[float, Fault | None, Admission | None]:
        """Log a generation POST, ask the rate limiter (per ``key``) and, when admitted, take
        the next queued fault (faulted and refused requests are logged too)."""
        now = time.monotonic()
        admission = None
        if self.ratelimit.active:
            admission = self.ratelimit.admit(key, images=_images(body))
        with self._lock:
            self._log.append((now, body))
            if admission is not None and not admission.allowed:
                self._refused.append((now, body))
                return now, None, admission
            return now, (self._faults.popleft() if self._faults else None), admission

    def refused(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self._refused)

    def finish(self, started: float) -> None:
        with self._lock:
            self._spans.append((started, time.monotonic()))

    def note_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def log(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self._log)

    def spans(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._spans)

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def reset(self) -> None:
        """Forget faults, logs and files (the image cache stays: it is only a speed-up)."""
        with self._lock:
            self._faults.clear()
            self._log.clear()
            self._refused.clear()
            self._spans.clear()
            self._errors.clear()
            self._files.clear()
            self._downloads = 0
        self.ratelimit.reset()

    # --- URL results ----------------------------------------------------------------------

    def host_file(self, data: bytes, mime: str, ext: str, *, expired: bool = False) -> str:
        """Keep ``data`` for download and return its URL (already expired when asked)."""
        name = f"{secrets.token_urlsafe(18)}.{ext}"
        expires = time.time() - 1 if expired else time.time() + self.url_ttl
        with self._lock:
            self._files[name] = HostedFile(data, mime, expires)
            while len(self._files) > _MAX_FILES:
                self._files.popitem(last=False)
        return f"{self.base_url}/files/{name}"

    def get_file(self, name: str) -> HostedFile | None:
        with self._lock:
            self._downloads += 1
            found = self._files.get(name)
            if found is not None and found.expired:
                found.data = b""  # free the bytes; keep the entry so the answer stays 403
            return found

    @property
    def downloads(self) -> int:
        with self._lock:
            return self._downloads


def _images(body: dict[str, Any]) -> int:
    """How many images a request asks for (what an images-per-minute limit counts)."""
    n = body.get("n", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
