"""A small, strict HTTP client for Polygon/Massive's REST API.

KapMan does not use the official client's transport for ingestion: its models crash on a
nested ``null`` (``"greeks": null``), its pagination has no loop guard, and its retries end in
urllib3 exceptions without a status.  This module owns the policy instead: bearer auth, real
connect/read timeouts, exponential backoff with full jitter on 429/5xx/timeouts honouring
Retry-After, a deadline per request (retries and waits included) and optionally per run, a shared
rate limiter, a page cap and cursor-loop detection.  The API key is sent
only in the Authorization header, only to the configured API host, and never appears in URLs,
logs or errors.

What a response says is checked where it enters (``check_page``): a 200 whose body is not a
JSON object, whose ``results`` is not a list, whose ``next_url`` is not a string or whose
``status`` is an error's (``"ERROR"``) is retried as transient within the request deadline, then
fails the request with what was received (truncated, the key masked).  A ``next_url`` is followed
only to the configured host (``follow``).  A body is read chunk by chunk within the request's
deadline (a server dripping bytes never trips a read timeout) and up to ``MAX_BODY`` bytes.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, NamedTuple, overload
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import orjson
import urllib3

from kapman.errors import (
    AuthError,
    DeadlineError,
    EntitlementError,
    PaginationError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from kapman.providers.ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: Pagination guard: NVDA's chain is ~15 pages of 250 and the full ticker list ~35 of 1000.
DEFAULT_MAX_PAGES = 500
#: ``envelope``: where the results key may start, and how many ``]`` from the end may close it.
_RESULTS_KEY = re.compile(rb'"results"[ \t\r\n]*:[ \t\r\n]*\[')
_HEAD_LIMIT = 4096
_TAIL_TRIES = 8
#: Backoff: base * 2**attempt, capped, with full jitter (AWS architecture blog's recommendation).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
#: Seconds one request may take, retries and waits included, unless told otherwise: a server that
#: asks for longer (``Retry-After: 3600``) fails the request at once instead of stalling the run.
REQUEST_DEADLINE = 120.0
#: The header by which the offline sandbox names itself and its clock (kapman.sandbox.rest).
SANDBOX_CLOCK_HEADER = "X-Sandbox-Clock"
#: Characters of a refused body quoted in its error.
RECEIVED_CHARS = 120
#: The largest body read: a whole market's grouped daily is about 2 MB, a page of 250 option
#: snapshots well under 1 MB.
MAX_BODY = 64 * 2**20
#: Bytes asked for per read of a body; the deadline is checked between reads.
READ_CHUNK = 2**16
#: A page's ``status`` that says it is no page (as an error response's body says it), whatever
#: the HTTP status: its missing results and next_url would read as the end of the list.
ERROR_STATUSES = frozenset({"ERROR", "NOT_AUTHORIZED", "NOT_FOUND"})


class ForeignURLError(ProviderError):
    """A URL the server sent (``next_url``) leads away from the configured API host: not followed."""


#: Credentials a body might echo (``apiKey=…``, ``Bearer …``), masked wherever it is quoted.
_CREDENTIAL = re.compile(r"(?i)(api_?key[\"']?\s*[=:]\s*[\"']?|bearer\s+)[^\s&\"',}]+")


def masked(text: str, secret: str | None = None) -> str:
    """``text`` with ``secret`` and anything that looks like a credential masked."""
    text = _CREDENTIAL.sub(r"\1***", text)
    return text.replace(secret, "***") if secret else text


def received(body: bytes, secret: str | None = None) -> str:
    """What a refused body held, for its error: its start, quoted, with ``secret`` and anything
    that looks like a credential masked (the worker processes that call this hold no key)."""
    text = masked(body[:RECEIVED_CHARS * 4].decode("utf-8", "replace"), secret)
    shown = text[:RECEIVED_CHARS] + ("…" if len(text) > RECEIVED_CHARS or len(body) > RECEIVED_CHARS * 4 else "")
    return f"received {len(body)} bytes: {shown!r}" if body else "received an empty body"


@dataclass
class RequestStats:
    """Counters shared across threads for progress and summaries."""

    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries


class RawPage(NamedTuple):
    """One page as received: its body, the path its errors name, the next page's URL (if any)."""

    body: bytes
    shown: str
    next_url: Any


def _error_text(body: bytes) -> str:
    """The server's own words from a JSON error body, or a short hint for HTML/empty ones; what
    cannot be printed (a newline, a terminal's escape sequence) is escaped, so they stay one line."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # nesting deeper than the interpreter's stack: not an error body
        data = None
    if not isinstance(data, dict):
        return "non-JSON response" if body else "empty response"
    text = str(data.get("error") or data.get("message") or data.get("status") or "")[:300]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait as ``Retry-After`` says: a number of seconds or an HTTP-date (counted from
    the response's ``Date``, else from now); None when absent, unreadable or not finite."""
    raw = headers.get("Retry-After") if headers else None
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        when = _instant(raw, iso=False)
        if when is None:
            return None
        seconds = (when - (_instant(headers.get("Date"), iso=False) or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def decode_json(body: bytes, shown: str, symbol: str | None = None) -> dict[str, Any]:
    """A response body as a JSON object (``shown``, ``symbol``: what its errors name).

    orjson decodes a page of 250 option snapshots about four times faster than ``json``, and
    decoding is most of an options run's CPU.  What orjson refuses and ``json`` accepts
    (``NaN``/``Infinity`` literals, a BOM or UTF-16/32, lone surrogates) goes to ``json``, so
    such bodies decode as before.  One difference remains: an integer literal outside the
    64-bit range becomes a float (no column KapMan stores can hold it either way).  Bytes that
    are not UTF-8 in a UTF-8 body decode as U+FFFD: the value holding them is refused where it
    is checked (a ticker is then no symbol), not the whole page.
    """
    try:
        data = orjson.loads(body)
    except ValueError:
        try:
            encoding = json.detect_encoding(body)
            data = json.loads(body.decode(encoding, "replace") if encoding.startswith("utf-8") else body)
        except (ValueError, RecursionError):  # nesting deeper than the interpreter's stack: not a page
            raise TransientProviderError(f"{shown}: response is not JSON ({received(body)})",
                                         url=shown, symbol=symbol) from None
    if not isinstance(data, dict):
        raise ProviderError(f"{shown}: unexpected response shape ({received(body)})", url=shown, symbol=symbol)
    return data


def check_page(top: dict[str, Any], body: bytes, shown: str, symbol: str | None) -> dict[str, Any]:
    """``top`` (a page's object) when its ``results`` is a list (or absent or null), its
    ``next_url`` a non-empty string (or absent or null) and its ``status`` none of
    ``ERROR_STATUSES``; else a transient error naming the field."""
    results, next_url, status = top.get("results"), top.get("next_url"), top.get("status")
    if isinstance(status, str) and status.strip().upper() in ERROR_STATUSES:
        what = f"status is {status!r}, an error's"
    elif results is not None and not isinstance(results, list):
        what = f"results is a JSON {type(results).__name__}, not a list"
    elif next_url is not None and not (isinstance(next_url, str) and next_url):
        what = f"next_url is {next_url!r}, not a URL"
    else:
        return top
    raise TransientProviderError(f"{shown}: wrongly shaped page: {what} ({received(body)})", url=shown, symbol=symbol)


def page_object(body: bytes, shown: str, symbol: str | None = None) -> dict[str, Any]:
    """A page's object, decoded whole and checked (``decode_json``, ``check_page``); any refusal is
    transient, so that the request is retried."""
    try:
        top = decode_json(body, shown, symbol)
    except ProviderError as exc:
        raise TransientProviderError(exc.message, url=shown, symbol=symbol) from None
    return check_page(top, body, shown, symbol)


def page_results(page: RawPage, symbol: str | None = None) -> list[Any]:
    """The ``results`` of a page from ``PolygonHTTP.paginate_raw``, decoded wherever the caller is.

    Fails with ``decode_json``'s errors for a body that is not a JSON object, and when the wholly
    decoded page names another next page than the one its envelope gave (and the fetch followed).
    """
    data = page_object(page.body, page.shown, symbol)
    if data.get("next_url") != page.next_url:
        raise ProviderError(f"{page.shown}: the page's next_url was misread; rerun the symbol",
                            url=page.shown, symbol=symbol)
    return list(data.get("results") or [])


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the port made explicit; None when it has none or a bad port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def follow(base_url: str, path_or_url: str) -> str:
    """The URL a request for ``path_or_url`` goes to on the API at ``base_url``.

    A path of the API (``/v3/...``) is resolved against the base.  An absolute http(s) URL (a
    ``next_url``, which names the vendor's public host) keeps only its path and query, as the
    vendor's own client does.  Anything else (``@host/...``, ``.host/...``, ``:443@host``,
    ``//host/...``, another scheme) is refused with ``ForeignURLError``: glued to the base it
    would name another host, and the request carries the API key.
    """
    if any(ord(c) < 33 or ord(c) == 127 for c in path_or_url):  # urlsplit would drop some silently
        raise ForeignURLError(f"{_quoted(path_or_url)} holds spaces or control characters; not followed")
    try:
        parts = urlsplit(path_or_url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ForeignURLError(f"{_quoted(path_or_url)} is not a URL ({exc}); not followed") from None
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        path_or_url = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    elif not path_or_url.startswith("/") or path_or_url.startswith("//") or parts.scheme:
        raise ForeignURLError(f"{_quoted(path_or_url)} is neither a path of the API nor an absolute URL; "
                              f"not followed (the API key is sent only to {host_of(base_url)})")
    url = urljoin(base_url + "/", path_or_url)
    if origin(url) != origin(base_url):
        raise ForeignURLError(f"{_quoted(path_or_url)} leads to {host_of(url)}; not followed "
                              f"(the API key is sent only to {host_of(base_url)})")
    return url


def host_of(url: str) -> str:
    """``scheme://host:port`` of a URL, without any user information, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "?"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ":?"
    return f"{parts.scheme or '?'}://{parts.hostname or '?'}{port}"


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Drop a response's connection, its body unread or half read (no later request may read the rest)."""
    response.close()
    response.release_conn()


def _quoted(text: str) -> str:
    return repr(text[:RECEIVED_CHARS] + ("…" if len(text) > RECEIVED_CHARS else ""))


@dataclass(frozen=True)
class ServerClock:
    """What a response says about the clock of the server that sent it.

    ``sandbox``: the offline sandbox's own clock (its ``X-Sandbox-Clock`` header), None from any
    other server.  ``date``: the ``Date`` header (whole seconds, UTC), None when absent or bad.
    """

    sandbox: datetime | None
    date: datetime | None

    @classmethod
    def of(cls, headers: Any) -> ServerClock:
        return cls(_instant(headers.get(SANDBOX_CLOCK_HEADER), iso=True), _instant(headers.get("Date"), iso=False))


def _instant(raw: str | None, *, iso: bool) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00")) if iso else parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class PolygonHTTP:
    def __init__(self, base_url: str, api_key: str, *, rate_limit: float = 50.0,
                 connect_timeout: float = 10.0, read_timeout: float = 30.0, max_retries: int = 6,
                 max_pages: int = DEFAULT_MAX_PAGES, pool_size: int = 16,
                 request_deadline: float = REQUEST_DEADLINE,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = origin(self.base_url)
        self._secret = api_key
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json",
                         "User-Agent": "kapman"}
        self._pool = urllib3.PoolManager(
            maxsize=pool_size, block=False, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))
        self._timeouts = (connect_timeout, read_timeout)
        self.limiter = RateLimiter(rate_limit, burst=max(1, min(int(rate_limit), 20)))
        self.max_retries = max_retries
        self.max_pages = max_pages
        self.request_deadline = request_deadline
        #: ``time.monotonic()`` after which no request starts or retries (a run's deadline), or None.
        self.run_deadline: float | None = None
        self.stats = RequestStats()
        self._sleep = sleep

    def close(self) -> None:
        self._pool.clear()

    def _url(self, path_or_url: str, params: dict[str, Any] | None) -> str:
        """The URL of a request for a path of the API or a page's ``next_url`` (see ``follow``);
        raises ``ForeignURLError`` for any URL that would leave the configured host."""
        url = follow(self.base_url, path_or_url)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        if origin(url) != self._origin:  # the last word, whatever built the URL
            raise ForeignURLError(f"refused a request to {host_of(url)}: the API key is sent only to "
                                  f"{host_of(self.base_url)}")
        return url

    def get_body(self, path_or_url: str, params: dict[str, Any] | None = None,
                 *, symbol: str | None = None) -> tuple[bytes, str]:
        """One GET with retries; returns the body of the 200 response and the path shown in errors."""
        body, shown, _ = self._get(path_or_url, params, symbol)
        return body, shown

    def get_page(self, path_or_url: str, params: dict[str, Any] | None, *, symbol: str | None,
                 whole: bool) -> tuple[bytes, str, dict[str, Any]]:
        """One page: its body, the path shown in errors and its checked object (``check_page``).

        ``whole``: the object is the whole decoded page; else its envelope (``results`` read as
        null, undecoded) when that can be read alone.  A refused body is retried as transient.
        """
        def parse(body: bytes, shown: str) -> dict[str, Any]:
            top = None if whole else self.envelope(body)
            if top is None:
                return page_object(body, shown, symbol)
            return check_page(top, body, shown, symbol)

        body, shown, top = self._get(path_or_url, params, symbol, parse)
        assert top is not None
        return body, shown, top

    def server_clock(self, path: str, params: dict[str, Any] | None = None) -> ServerClock:
        """What one GET of ``path`` says about the server's clock (see ``ServerClock``).

        Any answer will do, an error too (a 403 on that path has the same headers), and its body is
        not read; only a server that does not answer at all is retried, as ``get_body`` retries it,
        within the request deadline.
        """
        url = self._url(path, params)
        shown = urlsplit(url).path
        started, attempt = time.monotonic(), 0
        until = started + self.request_deadline
        while True:
            if not self.limiter.acquire(until):
                raise self._late(shown, None, started, "waiting for the rate limit (POLYGON_RATE_LIMIT)")
            self.stats.add(requests=1)
            try:
                response = self._open(url, until)
                _discard(response)
                return ServerClock.of(response.headers)
            except urllib3.exceptions.HTTPError as exc:
                if attempt >= self.max_retries or time.monotonic() - started > self.request_deadline:
                    raise TransientProviderError(f"{shown}: {type(exc).__name__} (gave up after {attempt + 1} "
                                                 "attempts)", url=shown) from None
                self.stats.add(retries=1)
                self._sleep(self._backoff(attempt, None))
                attempt += 1

    def _open(self, url: str, until: float) -> urllib3.BaseHTTPResponse:
        """A GET's response, its body still unread; no wait for it outlasts ``until``."""
        timeout = urllib3.Timeout(connect=self._timeouts[0], read=self._timeouts[1],
                                  total=max(until - time.monotonic(), 0.001))
        return self._pool.request("GET", url, headers=self._headers, preload_content=False, timeout=timeout)

    def _read(self, response: urllib3.BaseHTTPResponse, until: float, shown: str, symbol: str | None,
              started: float) -> bytes:
        """A response's whole body, read a chunk at a time.

        urllib3's read timeout bounds each wait for the next bytes, not the body: a server that
        sends a byte a second never trips it.  So the deadline is checked between chunks, and a
        body is refused past ``MAX_BODY`` bytes; either way the connection is dropped.
        """
        chunks, size = [], 0
        while chunk := response.read1(READ_CHUNK):
            size += len(chunk)
            if size > MAX_BODY:
                _discard(response)
                raise ProviderError(f"{shown}: the response passes {MAX_BODY // 2**20} MiB; not read further",
                                    url=shown, symbol=symbol)
            if time.monotonic() >= until:
                _discard(response)
                raise self._late(shown, symbol, started, f"reading the response ({size} bytes so far)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _get(self, path_or_url: str, params: dict[str, Any] | None, symbol: str | None,
             parse: Callable[[bytes, str], dict[str, Any]] | None = None,
             ) -> tuple[bytes, str, dict[str, Any] | None]:
        """One GET, retried on transient errors within the request's and the run's deadlines.

        ``parse``: what a 200's body must parse as; its ``TransientProviderError`` is retried too.
        Whatever it raises has the API key and anything that looks like a credential masked.
        """
        try:
            return self._attempts(path_or_url, params, symbol, parse)
        except ProviderError as exc:
            exc.args = (masked(exc.message, self._secret),)
            if isinstance(exc, ForeignURLError):
                exc.symbol = symbol
            raise

    def _attempts(self, path_or_url: str, params: dict[str, Any] | None, symbol: str | None,
                  parse: Callable[[bytes, str], dict[str, Any]] | None,
                  ) -> tuple[bytes, str, dict[str, Any] | None]:
        url = self._url(path_or_url, params)
        shown = urlsplit(url).path
        started = time.monotonic()
        until = started + self.request_deadline
        if self.run_deadline is not None:
            until = min(until, self.run_deadline)
        attempt = 0
        while True:
            if time.monotonic() >= until:
                raise self._late(shown, symbol, started, "starting the request")
            if not self.limiter.acquire(until):
                raise self._late(shown, symbol, started, "waiting for the rate limit (POLYGON_RATE_LIMIT)")
            self.stats.add(requests=1)
            try:
                response = self._open(url, until)   # a slow answer may not outlast the deadline either
                body = self._read(response, until, shown, symbol, started)
                error = self._classify(response.status, body, response.headers, shown, symbol)
                if error is None:
                    if parse is None:
                        return body, shown, None
                    try:
                        return body, shown, parse(body, shown)
                    except TransientProviderError as exc:
                        error = exc
            except (urllib3.exceptions.LocationValueError, http.client.InvalidURL) as exc:  # no retry can help
                raise ProviderError(f"{shown}: the URL cannot be requested ({exc})", url=shown, symbol=symbol) from None
            except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError,
                    urllib3.exceptions.NewConnectionError, urllib3.exceptions.SSLError) as exc:
                error = TransientProviderError(f"{shown}: {type(exc).__name__}", url=shown, symbol=symbol)
            except urllib3.exceptions.HTTPError as exc:
                error = TransientProviderError(f"{shown}: {type(exc).__name__}", url=shown, symbol=symbol)
            if not error.transient or attempt >= self.max_retries:
                if error.transient:
                    error.args = (f"{error.message} (gave up after {attempt + 1} attempts)",)
                raise error
            delay = self._backoff(attempt, getattr(error, "retry_after", None))
            if time.monotonic() + delay > until:
                raise self._late(shown, symbol, started, f"{error.message.removeprefix(shown + ': ')}, "
                                 f"and a retry in {delay:g}s")
            log.debug("retrying %s in %.2fs: %s", shown, delay, masked(error.message, self._secret))
            self.stats.add(retries=1)
            self._sleep(delay)
            attempt += 1

    def _late(self, shown: str, symbol: str | None, started: float, doing: str) -> DeadlineError:
        """The error for a request that cannot finish within its deadline or within the run's."""
        run = self.run_deadline is not None and self.run_deadline < started + self.request_deadline
        what = ("the run's deadline" if run else
                f"the request deadline of {self.request_deadline:g}s (POLYGON_REQUEST_DEADLINE)")
        return DeadlineError(f"{shown}: {doing} would pass {what}; gave up after {time.monotonic() - started:.1f}s",
                             url=shown, symbol=symbol, run=run)

    @staticmethod
    def _backoff(attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))

    @staticmethod
    def _classify(status: int, body: bytes, headers: Any, shown: str,
                  symbol: str | None) -> ProviderError | None:
        if status == 200:
            return None
        text = _error_text(body)
        kw: dict[str, Any] = {"status": status, "url": shown, "symbol": symbol}
        if status == 401:
            return AuthError(f"{shown}: 401 {text}", hint="check POLYGON_API_KEY in .env", **kw)
        if status == 403:
            return EntitlementError(f"{shown}: 403 not entitled ({text})",
                                    hint="your plan does not include this data", **kw)
        if status == 429:
            return RateLimitedError(f"{shown}: 429 rate limited", retry_after=_retry_after(headers), **kw)
        if status >= 500 or status in (408, 413, 499):
            return TransientProviderError(f"{shown}: {status} {text}", retry_after=_retry_after(headers), **kw)
        return ProviderError(f"{shown}: {status} {text}", **kw)

    @staticmethod
    def envelope(body: bytes) -> dict[str, Any] | None:
        """The top-level object of a page with ``results`` read as null, without decoding the results.

        A page is ``{..., "results": [...], ...}`` with the array taking nearly all of it.  The head
        up to the array is the text before the first ``"results": [`` (a quote cannot open that
        match inside a string, so in valid JSON it is a ``results`` key); the array ends at one of
        the last few ``]``, the one for which head + ``null`` + rest parses as an object.  None when
        no such split is found, or when two of them parse to different objects (an array after
        ``results``, ``"warnings": ["x"]``, parses too, and would drop every key between): the
        caller decodes the whole page then.  Which split is right is confirmed later, when the
        whole page is decoded (``page_results``).
        """
        match = _RESULTS_KEY.search(body, 0, _HEAD_LIMIT)
        if match is None or not body[: match.start()].lstrip().startswith(b"{"):
            return None
        head, end, found = body[: match.end() - 1], len(body), None
        for _ in range(_TAIL_TRIES):
            end = body.rfind(b"]", match.end(), end)
            if end < 0:
                break
            try:
                data = orjson.loads(head + b"null" + body[end + 1:])
            except ValueError:
                continue
            if not isinstance(data, dict) or (found is not None and data != found):
                return None
            found = data
        return found

    def paginate(self, path: str, params: dict[str, Any], *, symbol: str | None = None) -> Iterator[list[dict]]:
        """Yield each page's ``results``; follows ``next_url`` until it is absent."""
        for data in self._pages(path, params, symbol, raw=False):
            yield list(data.get("results") or [])

    def paginate_raw(self, path: str, params: dict[str, Any], *, symbol: str | None = None) -> Iterator[RawPage]:
        """``paginate``'s pages undecoded: each body with the next_url read from its envelope.

        Decoding the results is left to whoever consumes the pages (a worker process); the rules
        are ``paginate``'s (page cap, cursor loops, errors).  A body whose envelope cannot be read
        on its own is decoded whole, with ``decode_json``'s errors.
        """
        yield from self._pages(path, params, symbol, raw=True)

    @overload
    def _pages(self, path: str, params: dict[str, Any], symbol: str | None,
               raw: Literal[False]) -> Iterator[dict[str, Any]]: ...

    @overload
    def _pages(self, path: str, params: dict[str, Any], symbol: str | None,
               raw: Literal[True]) -> Iterator[RawPage]: ...

    def _pages(self, path: str, params: dict[str, Any], symbol: str | None,
               raw: bool) -> Iterator[dict[str, Any]] | Iterator[RawPage]:
        seen: set[str] = set()
        url: str = path
        query: dict[str, Any] | None = params
        for page in range(self.max_pages):
            body, shown, top = self.get_page(url, query, symbol=symbol, whole=not raw)
            next_url = top.get("next_url")
            if next_url:
                try:
                    follow(self.base_url, next_url)
                except ForeignURLError as exc:  # the unit fails: its pages end here unchecked
                    said = masked(f"{path}: page {page + 1}'s next_url {exc.message}", self._secret)
                    raise ForeignURLError(said, url=path, symbol=symbol) from None
            yield RawPage(body, shown, next_url) if raw else top
            if not next_url:
                return
            cursor = parse_qs(urlsplit(next_url).query).get("cursor", [next_url])[0]
            if cursor in seen:
                raise PaginationError(f"{path}: the server repeated a pagination cursor after page {page + 1}",
                                      url=path, symbol=symbol)
            seen.add(cursor)
            url, query = next_url, None
        raise PaginationError(f"{path}: more than {self.max_pages} pages; stopping", url=path, symbol=symbol)
