"""PolygonHTTP against a real server on 127.0.0.1 that misbehaves on the wire: a body dripped a byte
at a time, a body without end, a connection dropped mid-body, a redirect to another host."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kapman.errors import DeadlineError, ProviderError, TransientProviderError
from kapman.providers import http as transport
from kapman.providers.http import PolygonHTTP

KEY = "secret-key-42"


class Server:
    """A threaded HTTP server whose handler is ``answer(handler)``; every request is recorded
    as (port, path, Authorization header)."""

    def __init__(self, answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        self.seen: list[tuple[int, str, str | None]] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                seen.append((self.server.server_address[1], self.path, self.headers.get("Authorization")))
                try:
                    answer(self)
                except OSError:  # the client went away
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Server:
        started.append(Server(answer))
        return started[-1]

    yield start
    for server in started:
        server.close()


def client(server: Server, **kw: Any) -> PolygonHTTP:
    return PolygonHTTP(server.url, KEY, read_timeout=1.0, sleep=lambda _: None, **kw)


def drip(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A 200 whose promised 10,000 bytes come one every 0.1 s: each read waits far less than
    the read timeout, the body would take 1,000 s."""
    handler.send_response(200)
    handler.send_header("Content-Length", "10000")
    handler.send_header("X-Sandbox-Clock", "2026-12-07T12:00:00Z")
    handler.end_headers()
    for _ in range(10_000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def test_a_body_dripped_a_byte_at_a_time_ends_at_the_request_deadline(serve: Callable[..., Server]) -> None:
    """It used to be read for as long as the server kept dripping: urllib3's read timeout bounds
    each wait for bytes, and its total timeout only the wait for the headers."""
    server = serve(drip)
    http = client(server, request_deadline=1.5)
    started = time.monotonic()
    with pytest.raises(DeadlineError) as info:
        http.get_body("/v3/x", symbol="AAPL")
    assert time.monotonic() - started < 4
    assert info.value.message.startswith("/v3/x: reading the response (")
    assert "would pass the request deadline of 1.5s (POLYGON_REQUEST_DEADLINE)" in info.value.message
    assert info.value.symbol == "AAPL" and len(server.seen) == 1


def test_the_server_clock_does_not_wait_for_a_dripped_body(serve: Callable[..., Server]) -> None:
    """Only its headers are wanted; the body was read whole, for as long as it took."""
    http = client(serve(drip), request_deadline=1.5)
    started = time.monotonic()
    clock = http.server_clock("/v3/x")
    assert time.monotonic() - started < 1
    assert clock.sandbox is not None and clock.sandbox.isoformat() == "2026-12-07T12:00:00+00:00"


def test_a_body_past_the_largest_is_refused_without_reading_it_all(serve: Callable[..., Server],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MAX_BODY", 200_000)
    sent: list[int] = []

    def endless(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()            # no length: the body ends when the connection does
        handler.wfile.write(b'{"results": [')
        for _ in range(1000):
            handler.wfile.write(b"1, " * 10_000)
            sent.append(1)

    http = client(serve(endless), max_retries=3)
    with pytest.raises(ProviderError) as info:
        http.get_body("/v3/x")
    assert info.value.message == "/v3/x: the response passes 0 MiB; not read further"
    assert not info.value.transient and len(sent) < 1000


def test_a_connection_dropped_mid_body_is_retried(serve: Callable[..., Server]) -> None:
    answers = iter([b'{"results": [1, 2', b'{"results": [1, 2]}'])

    def drop_first(handler: http.server.BaseHTTPRequestHandler) -> None:
        body = next(answers)
        handler.send_response(200)
        handler.send_header("Content-Length", "19")
        handler.end_headers()
        handler.wfile.write(body)
        handler.close_connection = True

    server = serve(drop_first)
    http = client(server)
    assert http.get_page("/v3/x", None, symbol=None, whole=True)[2] == {"results": [1, 2]}
    assert len(server.seen) == 2 and http.stats.retries == 1


def test_a_dropped_connection_every_time_gives_up_naming_it(serve: Callable[..., Server]) -> None:
    def drop(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b'{"res')
        handler.close_connection = True

    http = client(serve(drop), max_retries=2)
    with pytest.raises(TransientProviderError, match=r"^/v3/x: ProtocolError \(gave up after 3 attempts\)$"):
        http.get_body("/v3/x")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_host_is_not_followed(serve: Callable[..., Server], status: int) -> None:
    """Neither the header nor the query may carry the key there: the redirect is an error."""
    other = serve(lambda h: (h.send_response(200), h.end_headers(), h.wfile.write(b'{"results": []}')))

    def redirect(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", f"{other.url}/steal?apiKey={KEY}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    api = serve(redirect)
    with pytest.raises(ProviderError) as info:
        client(api).get_body("/v3/x")
    assert other.seen == [] and api.seen == [(api.port, "/v3/x", f"Bearer {KEY}")]
    assert info.value.message == f"/v3/x: {status} empty response" and not info.value.transient
