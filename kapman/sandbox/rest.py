"""A threaded HTTP server on 127.0.0.1 speaking the Polygon/Massive REST protocol.

API endpoints (auth: ``Authorization: Bearer <key>`` or ``?apiKey=<key>``):

- ``GET /v3/reference/tickers``, ``GET /v3/reference/splits``, ``GET /v3/snapshot/options/{underlying}``
  (cursor-paginated)
- ``GET /v2/aggs/grouped/locale/us/market/stocks/{date}``

Control endpoints (no auth, JSON bodies; not counted as API requests):

- ``GET /_sandbox/faults``; ``POST /_sandbox/faults`` with ``{"kind": "rate_limit", "times": 2,
  "retry_after": 1, "path_prefix": "/v3"}`` (kinds: rate_limit, server_error, slow, latency, forbid,
  pagination_loop, body, reshape, patch, clear; arguments as in :class:`kapman.sandbox.faults.Faults`;
  body, reshape and patch serve a hostile upstream) or a list of them;
  ``DELETE /_sandbox/faults`` clears everything.
- ``GET /_sandbox/clock``; ``POST /_sandbox/clock`` with ``{"now": "2025-12-18"}`` (a date means its
  16:00 New York close; timestamps are ISO 8601 with an offset: ``kapman.clock``'s forms) or
  ``{"step_trading_days": 1}``.
- ``GET /_sandbox/requests`` (counts per path); ``DELETE /_sandbox/requests`` resets them.
- ``GET /_sandbox/flatfiles``; ``POST /_sandbox/flatfiles`` with ``{"action": "preliminary",
  "date": "2025-12-19"}`` (actions: preliminary, final, republish, delete, forbid with ``"dates"``,
  forbid_listing, allow; see :meth:`kapman.sandbox.s3.SandboxS3.apply`): the flat-file bucket's
  faults, when the server was given one (``flatfiles``; ``python -m kapman.sandbox serve`` does).

Faults act before authentication, like a proxy in front of the API.  Every response carries
``X-Sandbox-Clock`` (the server's clock, ISO 8601): how a client tells the sandbox from the live
API, whose chains are always "now" by the real clock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from kapman.calendar import trading_days
from kapman.clock import close_of, ny_date_of, parse_instant
from kapman.providers.http import SANDBOX_CLOCK_HEADER as CLOCK_HEADER
from kapman.sandbox import endpoints
from kapman.sandbox.faults import NGINX_502, RATE_LIMIT_BODY, Faults
from kapman.sandbox.market import Market

if TYPE_CHECKING:  # moto loads only where a bucket is served
    from kapman.sandbox.s3 import SandboxS3

log = logging.getLogger(__name__)

TICKERS_PATH = "/v3/reference/tickers"
SPLITS_PATH = "/v3/reference/splits"
OPTIONS_PREFIX = "/v3/snapshot/options/"
_GROUPED = re.compile(r"^/v2/aggs/grouped/locale/us/market/stocks/([^/]+)$")
NOT_ENTITLED = "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing"


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that drops its connection (a pool closed at the end of a run) is not an error of the
        server's: one debug line, not socketserver's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("sandbox REST: %s closed the connection (%s)", client_address, exc)
            return
        log.warning("sandbox REST: request from %s failed: %r", client_address, exc)


class SandboxRestServer:
    """Serve ``market`` over HTTP; use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, market: Market, api_key: str = "sandbox-key", port: int = 0, *, identify: bool = True) -> None:
        """``identify=False``: answer without ``X-Sandbox-Clock``, as the live API does (to test the
        rules KapMan applies to a live server)."""
        self.market, self.api_key, self.identify = market, api_key, identify
        self.faults = Faults()
        self.flatfiles: SandboxS3 | None = None  # the bucket /_sandbox/flatfiles controls
        self._now = market.now
        self._counts: Counter[str] = Counter()
        self._serial = 0
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SandboxRestServer:
        # stop() waits for the serving loop's next poll: a short one makes stopping prompt
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sandbox-rest", daemon=True)
        self._thread.start()
        log.info("sandbox REST server on %s", self.base_url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxRestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # The server's clock: option snapshots describe "now", grouped daily stops at it.
    @property
    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set_clock(self, instant: datetime) -> None:
        instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
        with self._lock:
            self._now = instant.astimezone(UTC)

    def step_trading_days(self, n: int = 1) -> datetime:
        """Move the clock to the close of the n-th next trading day (n >= 1)."""
        day = ny_date_of(self.now)
        following = list(trading_days(day.replace(day=1), day.replace(year=day.year + 2)))
        later = [d for d in following if close_of(d) > self.now]
        self.set_clock(close_of(later[max(n, 1) - 1]))
        return self.now

    def request_count(self, path_prefix: str | None = None) -> int:
        with self._lock:
            return sum(c for p, c in self._counts.items() if path_prefix is None or p.startswith(path_prefix))

    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def _count(self, path: str) -> str:
        """Count an API request and return its (deterministic per seed) request id."""
        with self._lock:
            self._counts[path] += 1
            self._serial += 1
            serial = self._serial
        return hashlib.md5(f"{self.market.seed}:{serial}".encode()).hexdigest()


def _handler_for(server: SandboxRestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        sandbox = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    sandbox: SandboxRestServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect
    server_version = "nginx"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.sandbox.identify:
            self.send_header(CLOCK_HEADER, self.sandbox.now.isoformat().replace("+00:00", "Z"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    # ---- control endpoints -------------------------------------------------------------------
    def _body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def _control(self, method: str, path: str) -> None:
        sb = self.sandbox
        try:
            if path == "/_sandbox/faults":
                if method == "POST":
                    body = self._body()
                    for spec in body if isinstance(body, list) else [body]:
                        if not isinstance(spec, dict):
                            raise ValueError("expected a JSON object or a list of them")
                        sb.faults.apply(spec)
                elif method == "DELETE":
                    sb.faults.clear()
                return self._json(200, sb.faults.describe())
            if path == "/_sandbox/clock":
                if method == "POST":
                    body = self._body()
                    if not isinstance(body, dict):
                        raise ValueError("expected a JSON object")
                    if "now" in body:
                        sb.set_clock(parse_instant(str(body["now"])))
                    elif "step_trading_days" in body:
                        sb.step_trading_days(int(body["step_trading_days"]))
                return self._json(200, {"now": sb.now.isoformat().replace("+00:00", "Z")})
            if path == "/_sandbox/flatfiles" and sb.flatfiles is not None:
                done: dict[str, str] = {}
                if method == "POST":
                    body = self._body()
                    for spec in body if isinstance(body, list) else [body]:
                        if not isinstance(spec, dict):
                            raise ValueError("expected a JSON object or a list of them")
                        done.update(sb.flatfiles.apply(spec))
                return self._json(200, {**sb.flatfiles.describe(), **done})
            if path == "/_sandbox/requests":
                if method == "DELETE":
                    sb.reset_counts()
                return self._json(200, {"total": sb.request_count(), "by_path": sb.request_counts()})
        except (ValueError, TypeError) as exc:
            return self._json(400, {"status": "ERROR", "error": str(exc)})
        self._json(404, {"status": "NOT_FOUND", "message": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._control("POST", urlsplit(self.path).path)

    def do_DELETE(self) -> None:  # noqa: N802
        self._control("DELETE", urlsplit(self.path).path)

    # ---- API ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/_sandbox/"):
            return self._control("GET", path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        sb = self.sandbox
        request_id = sb._count(path)
        if sb.faults.latency_seconds:
            time.sleep(sb.faults.latency_seconds)
        resolved: tuple[dict[str, str], str | None] | None = None
        bad: str | None = None
        try:
            resolved = self._resolve(path, query)
        except endpoints.BadQuery as exc:
            bad = str(exc)
        symbol = resolved[1] if resolved else None
        if self._fault(path, symbol, request_id):
            return
        if not self._authorised(query, request_id):
            return
        if bad is not None:
            return self._json(
                400,
                {
                    "status": "ERROR",
                    "request_id": request_id,
                    "error": f"Failed to parse query parameters from URL: {bad}",
                },
            )
        if sb.faults.is_forbidden(symbol):
            return self._json(
                403, {"status": "NOT_AUTHORIZED", "request_id": request_id, "message": NOT_ENTITLED}
            )
        try:
            self._serve(path, resolved[0] if resolved else query, query, request_id)
        except endpoints.BadQuery as exc:
            self._json(
                400,
                {
                    "status": "ERROR",
                    "request_id": request_id,
                    "error": f"Failed to parse query parameters from URL: {exc}",
                },
            )

    def _resolve(self, path: str, query: dict[str, str]) -> tuple[dict[str, str], str | None]:
        """The effective query (a cursor replaces the query) and the symbol the request is about."""
        effective = query
        if "cursor" in query:
            effective, _ = endpoints.decode_cursor(path, query["cursor"])
        if path.startswith(OPTIONS_PREFIX):
            return effective, path[len(OPTIONS_PREFIX) :]
        return effective, effective.get("ticker") or None

    def _fault(self, path: str, symbol: str | None, request_id: str) -> bool:
        faults = self.sandbox.faults
        slow = faults.take("slow", path, symbol)
        if slow:
            time.sleep(slow.seconds)
        error = faults.take("server_error", path, symbol)
        if error:
            if error.html:
                self._send(error.status, NGINX_502.encode(), "text/html")
            else:
                self._json(
                    error.status,
                    {"status": "ERROR", "request_id": request_id, "error": "Internal Server Error"},
                )
            return True
        hostile = faults.take("body", path, symbol)
        if hostile:
            self._send(200, hostile.body.encode(), "application/json")
            return True
        limited = faults.take("rate_limit", path, symbol)
        if limited:
            headers = {} if limited.retry_after is None else {"Retry-After": f"{limited.retry_after:g}"}
            body = (
                b""
                if limited.empty_body
                else json.dumps(
                    {"status": "ERROR", "request_id": request_id, "error": RATE_LIMIT_BODY}
                ).encode()
            )
            self._send(429, body, headers=headers)
            return True
        return False

    def _authorised(self, query: dict[str, str], request_id: str) -> bool:
        header = self.headers.get("Authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        supplied = [k for k in (bearer, query.get("apiKey")) if k]
        if self.sandbox.api_key in supplied:
            return True
        error = "Unknown API Key" if supplied else "API Key was not provided"
        self._json(401, {"status": "ERROR", "request_id": request_id, "error": error})
        return False

    def _serve(self, path: str, effective: dict[str, str], query: dict[str, str], request_id: str) -> None:
        sb = self.sandbox
        market, now = sb.market, sb.now
        offset = endpoints.decode_cursor(path, query["cursor"])[1] if "cursor" in query else 0
        if path == TICKERS_PATH:
            limit = endpoints.parse_limit(effective, 100, 1000)
            return self._page(
                path,
                effective,
                endpoints.tickers(market, effective),
                offset,
                limit,
                request_id,
                with_count=True,
            )
        if path == SPLITS_PATH:
            limit = endpoints.parse_limit(effective, 10, 1000)
            results = endpoints.splits(market, effective)
            return self._page(path, effective, results, offset, limit, request_id, with_count=False)
        if path.startswith(OPTIONS_PREFIX) and len(path) > len(OPTIONS_PREFIX):
            limit = endpoints.parse_limit(effective, 10, 250)
            underlying = unquote(path[len(OPTIONS_PREFIX) :])   # I%3ASPX is I:SPX
            results = endpoints.option_snapshots(market, underlying, effective, now)
            return self._page(path, effective, results, offset, limit, request_id, with_count=False)
        match = _GROUPED.match(path)
        if match:
            body = endpoints.grouped_daily(market, match.group(1), effective, now)
            return self._json(200, {**body, "status": "OK", "request_id": request_id})
        self._json(404, {"status": "NOT_FOUND", "request_id": request_id, "message": "Not Found"})

    def _page(
        self,
        path: str,
        query: dict[str, str],
        results: list[dict],
        offset: int,
        limit: int,
        request_id: str,
        *,
        with_count: bool,
    ) -> None:
        page = results[offset : offset + limit]
        body: dict = {"results": page, "status": "OK", "request_id": request_id}
        if with_count:
            body["count"] = len(page)
        if self.sandbox.faults.loops(path):
            # Point back at the second page (or the first), whatever page this is.
            target = limit if len(results) > limit else 0
            body["next_url"] = self._next_url(path, query, target)
        elif offset + limit < len(results):
            body["next_url"] = self._next_url(path, query, offset + limit)
        self._json(200, self._corrupted(path, body))

    def _corrupted(self, path: str, body: dict) -> dict:
        """``body`` as the ``reshape`` and ``patch`` faults leave it."""
        faults = self.sandbox.faults
        symbol = path[len(OPTIONS_PREFIX):] if path.startswith(OPTIONS_PREFIX) else None
        patch = faults.take("patch", path, symbol)
        if patch is not None:
            body["results"] = patch.patched(body["results"])
        reshape = faults.take("reshape", path, symbol)
        if reshape is not None:
            body.update(reshape.fields)
        return body

    def _next_url(self, path: str, query: dict[str, str], offset: int) -> str:
        original = {k: v for k, v in query.items() if k not in ("apiKey", "cursor")}
        return f"{self.sandbox.base_url}{path}?cursor={endpoints.encode_cursor(path, original, offset)}"
