"""The seam's socket backend and body reader, over real loopback sockets, plain and TLS.

A scripted server (a thread per connection) sends raw bytes: honest and lying
``Content-Length``, chunked and gzip bodies, a body that trickles in, a peer that hangs up
mid-body, no answer at all. The TLS server uses a certificate made here for 127.0.0.1; the
client trusts it through its own context, so the real verification path runs.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

import httpx
import pytest

from cometnb._client.http import (
    AsyncHttp,
    Budget,
    SocketStream,
    SocketTransport,
    aread_body,
    shared_ssl_context,
)
from cometnb._core.errors import ResponseError

MB = 1 << 20
TIMEOUT = httpx.Timeout(10.0)


# --- a scripted raw server ---------------------------------------------------------------------


@dataclass
class Step:
    """Bytes to send, then a pause; ``close`` hangs up right after (no TLS close-notify)."""

    data: bytes
    pause: float = 0.0
    close: bool = False


@dataclass
class RawServer:
    """Answers every request on a connection with ``script`` (a list of steps per request)."""

    script: list[Step]
    tls: ssl.SSLContext | None = None
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1/x"

    def __enter__(self) -> RawServer:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            serve = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            serve.start()
            self._threads.append(serve)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            while not self._stop.is_set():
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                self.requests.append(head)
                for step in self.script:
                    conn.sendall(step.data)
                    if step.pause:
                        time.sleep(step.pause)
                    if step.close:
                        conn.shutdown(socket.SHUT_RDWR)
                        return
        except OSError:
            return
        finally:
            conn.close()


def answer(body: bytes, **headers: str) -> bytes:
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items() if v)
    return f"HTTP/1.1 200 OK\r\n{lines}\r\n".encode() + body


def chunked(body: bytes, size: int) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def image_answer(size: int = 3 * MB) -> bytes:
    """A JSON answer like the API's: one base64 image of ``size`` bytes (deterministic)."""
    import base64

    raw = (bytes(range(256)) * (size // 256 + 1))[:size]
    return json.dumps(
        {"created": 1, "data": [{"b64_json": base64.b64encode(raw).decode()}]}
    ).encode()


@dataclass
class Got:
    body: bytes
    stream: object  # the connection's network stream (httpcore's response extension)
    tls: str | None  # the TLS version while the connection was open


def read(
    url: str,
    *,
    limit: int = 64 * MB,
    seconds: float = 30,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = TIMEOUT,
) -> Got:
    """GET ``url`` through the seam, its body read by :func:`aread_body` within the caps."""

    async def main() -> Got:
        http = AsyncHttp(timeout, transport)
        try:
            async with http.open("GET", url) as response:
                stream = response.extensions.get("network_stream")
                tls = stream.get_extra_info("ssl_object") if stream is not None else None
                version = tls.version() if isinstance(tls, ssl.SSLSocket) else None
                budget = Budget("127.0.0.1", "the result", limit=limit, seconds=seconds)
                return Got(await aread_body(response, budget), stream, version)
        finally:
            await http.aclose()

    return asyncio.run(main())


# --- plain sockets -----------------------------------------------------------------------------


def test_a_large_answer_with_content_length_arrives_whole_over_the_socket_backend() -> None:
    body = image_answer()
    with RawServer([Step(answer(body))]) as server:
        got = read(server.url)
    assert got.body == body
    assert isinstance(got.stream, SocketStream)  # the seam's own backend, not anyio's
    assert got.tls is None
    assert server.requests[0].startswith(b"GET /v1/x HTTP/1.1")


def test_a_chunked_body_without_content_length() -> None:
    body = image_answer(MB)
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 10_000)
    with RawServer([Step(raw)]) as server:
        assert read(server.url).body == body


def test_a_gzip_body_is_decoded_and_counted_decoded() -> None:
    body = image_answer(MB)
    packed = gzip.compress(body)
    with RawServer([Step(answer(packed, **{"Content-Encoding": "gzip"}))]) as server:
        assert read(server.url).body == body
        with pytest.raises(ResponseError, match="more than"):
            read(server.url, limit=len(body) - 1)  # the cap is on what it inflates to


def test_a_body_that_trickles_in_is_read_in_full() -> None:
    body = image_answer(256 * 1024)
    raw = answer(body)
    steps = [Step(raw[i : i + 20_000], pause=0.01) for i in range(0, len(raw), 20_000)]
    with RawServer(steps) as server:
        assert read(server.url).body == body


def test_a_body_over_the_budget_is_refused_as_it_arrives() -> None:
    body = image_answer(2 * MB)
    with RawServer([Step(answer(body))]) as server, pytest.raises(ResponseError) as info:
        read(server.url, limit=MB)
    assert "more than 1 MB" in info.value.message


def test_a_content_length_larger_than_the_body_is_a_dropped_connection() -> None:
    body = image_answer(MB)
    lying = answer(body, **{"Content-Length": str(len(body) + 5000)})
    with RawServer([Step(lying, close=True)]) as server, pytest.raises(httpx.RemoteProtocolError):
        read(server.url)


def test_a_content_length_smaller_than_the_body_reads_what_it_declares() -> None:
    body = image_answer(MB)
    declared = len(body) // 2
    lying = answer(body, **{"Content-Length": str(declared)})
    with RawServer([Step(lying, close=True)]) as server:
        assert read(server.url).body == body[:declared]  # the JSON is then cut: parsing says so


def test_a_content_length_over_the_budget_is_not_trusted_to_size_anything() -> None:
    # The header claims 1 GB; the budget stops the read at its cap, nothing is allocated for it.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n"
    server = RawServer([Step(head + b"x" * (2 * MB), close=True)])
    with server, pytest.raises(ResponseError, match="more than 1 MB"):
        read(server.url, limit=MB)


def test_no_answer_is_a_read_timeout() -> None:
    with RawServer([Step(b"", pause=3.0)]) as server, pytest.raises(httpx.ReadTimeout):
        read(server.url, timeout=httpx.Timeout(10.0, read=0.3))


def test_a_refused_connection_says_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(httpx.ConnectError, match=r"(?i)refused"):
        read(f"http://127.0.0.1:{port}/v1/x")


async def three_gets(url: str, transport: httpx.AsyncBaseTransport | None = None) -> list[bytes]:
    """Three GETs of ``url`` on one pool, one after another."""
    http = AsyncHttp(TIMEOUT, transport)
    try:
        bodies = []
        for _ in range(3):
            async with http.open("GET", url) as response:
                budget = Budget("h", "r", limit=8 * MB, seconds=30)
                bodies.append(await aread_body(response, budget))
        return bodies
    finally:
        await http.aclose()


def test_a_kept_alive_connection_serves_the_next_request() -> None:
    body = image_answer(MB)
    with RawServer([Step(answer(body))]) as server:
        assert asyncio.run(three_gets(server.url)) == [body] * 3
    assert len(server.requests) == 3 and server.connections == 1


def test_a_proxy_from_the_environment_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # The socket backend replaces only httpx's direct route: HTTP_PROXY keeps working.
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    body = b'{"via": "proxy"}'
    with RawServer([Step(answer(body))]) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        got = read("http://images.example.invalid/v1/x")
    assert got.body == body
    assert proxy.requests[0].startswith(b"GET http://images.example.invalid/v1/x HTTP/1.1")


# --- TLS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A self-signed certificate for 127.0.0.1, and a client context that trusts only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cometnb test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Certs(server, client)


def test_tls_a_large_answer_arrives_whole_over_the_socket_backend(certs: Certs) -> None:
    body = image_answer()
    with RawServer([Step(answer(body))], tls=certs.server) as server:
        got = read(server.url, transport=SocketTransport(certs.client))
    assert got.body == body
    assert isinstance(got.stream, SocketStream)
    assert got.tls in ("TLSv1.2", "TLSv1.3")


def test_tls_chunked_gzip_and_a_trickle(certs: Certs) -> None:
    body = image_answer(512 * 1024)
    packed = gzip.compress(body)
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(packed, 3000)
    )
    steps = [Step(raw[i : i + 7000], pause=0.005) for i in range(0, len(raw), 7000)]
    with RawServer(steps, tls=certs.server) as server:
        assert read(server.url, transport=SocketTransport(certs.client)).body == body


def test_tls_peer_hanging_up_mid_body_is_a_dropped_connection(certs: Certs) -> None:
    body = image_answer(MB)
    raw = answer(body)
    server = RawServer([Step(raw[: len(raw) // 2], close=True)], tls=certs.server)
    with server, pytest.raises(httpx.RemoteProtocolError):
        read(server.url, transport=SocketTransport(certs.client))


def test_tls_an_untrusted_certificate_is_refused_before_sending(certs: Certs) -> None:
    # The process-wide context (the system's CAs) does not trust the test certificate.
    server = RawServer([Step(answer(b"{}"))], tls=certs.server)
    with server, pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
        read(server.url, transport=SocketTransport(shared_ssl_context()))
    assert server.requests == []  # nothing was sent


# --- the body reader, driven with scripted chunks ----------------------------------------------


async def pieces(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def read_chunks(chunks: list[bytes], limit: int = 64 * MB, **headers: str) -> bytes:
    response = httpx.Response(200, headers=headers, content=pieces(chunks))
    budget = Budget("example.com", "the result", limit=limit, seconds=30)
    return asyncio.run(aread_body(response, budget))


def test_pieces_of_every_size_are_joined_in_order() -> None:
    body = image_answer(3 * MB)
    sizes = [1, 7, 4095, 4096, 65536, 3, 16384, 100_000]
    chunks, at = [], 0
    while at < len(body):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(body[at : at + size])
        at += size
    assert read_chunks(chunks) == body
    assert read_chunks([body]) == body  # one piece: returned as it is
    assert read_chunks([]) == b""


def test_a_body_past_the_piece_limit_goes_on_in_one_buffer() -> None:
    # 20 MB in 64 KB reads: past 16 MB the reader switches to one growing buffer.
    block = bytes(range(256)) * 256
    body = b"".join(block[i % 256 :] + block[: i % 256] for i in range(320))
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    assert read_chunks(chunks) == body
    with pytest.raises(ResponseError, match="more than 19 MB"):
        read_chunks(chunks, limit=19 * MB)


def test_a_gzip_body_in_small_pieces_is_decoded() -> None:
    body = image_answer(MB)
    packed = gzip.compress(body)
    chunks = [packed[i : i + 999] for i in range(0, len(packed), 999)]
    assert read_chunks(chunks, **{"Content-Encoding": "gzip"}) == body


def test_tls_a_kept_alive_connection_serves_the_next_request(certs: Certs) -> None:
    # An idle TLS connection is not taken for a closed one ("is_readable"): it is reused.
    body = image_answer(MB)
    with RawServer([Step(answer(body))], tls=certs.server) as server:
        assert asyncio.run(three_gets(server.url, SocketTransport(certs.client))) == [body] * 3
    assert len(server.requests) == 3 and server.connections == 1
