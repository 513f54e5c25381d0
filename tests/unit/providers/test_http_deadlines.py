"""PolygonHTTP's deadlines: no request outlasts its own or the run's, whatever the server asks."""

from __future__ import annotations

import time
from typing import Any

import pytest
import urllib3

from kapman.errors import DeadlineError, ProviderError, TransientProviderError
from kapman.providers.http import PolygonHTTP
from kapman.providers.ratelimit import RateLimiter
from tests.support.canned_http import Response


def _Response(status: int, headers: dict[str, str], data: bytes = b"{}") -> Response:  # noqa: N802
    return Response(data, status, headers)


class Scripted(PolygonHTTP):
    """Answers from a script of responses; records the sleeps instead of sleeping."""

    def __init__(self, answers: list[Response], key: str = "k", **kw: Any) -> None:
        self.sleeps: list[float] = []
        super().__init__("http://api.test", key, sleep=self.sleeps.append, **kw)
        self.answers = answers
        self._pool.request = self._answer  # type: ignore[method-assign]

    def _answer(self, *args: Any, **kw: Any) -> Response:
        assert isinstance(kw["timeout"], urllib3.Timeout) and kw["timeout"].total <= self.request_deadline
        return self.answers.pop(0)


def test_retry_after_beyond_the_request_deadline_fails_at_once() -> None:
    http = Scripted([_Response(429, {"Retry-After": "3600"})], request_deadline=120)
    with pytest.raises(DeadlineError) as info:
        http.get_body("/v3/snapshot/options/AAPL", symbol="AAPL")
    assert info.value.message.startswith("/v3/snapshot/options/AAPL: 429 rate limited, and a retry in 3600s would "
                                         "pass the request deadline of 120s (POLYGON_REQUEST_DEADLINE)")
    assert http.sleeps == [] and not info.value.run and info.value.symbol == "AAPL"


def test_retry_after_within_the_deadline_is_honoured() -> None:
    http = Scripted([_Response(429, {"Retry-After": "2"}), _Response(200, {}, b'{"ok": 1}')], request_deadline=120)
    assert http.get_body("/v3/x")[0] == b'{"ok": 1}' and http.sleeps == [2.0]


def test_the_run_deadline_comes_first_when_it_is_nearer() -> None:
    http = Scripted([_Response(503, {"Retry-After": "5"})], request_deadline=120)
    http.run_deadline = time.monotonic() + 2
    with pytest.raises(DeadlineError, match="would pass the run's deadline") as info:
        http.get_body("/v3/x")
    assert info.value.run
    http.run_deadline = time.monotonic() - 1
    with pytest.raises(DeadlineError, match="starting the request would pass the run's deadline"):
        http.get_body("/v3/x")


def test_exhausted_retries_still_say_how_many() -> None:
    http = Scripted([_Response(500, {}), _Response(500, {})], max_retries=1)
    with pytest.raises(TransientProviderError, match=r"gave up after 2 attempts"):
        http.get_body("/v3/x")


def test_the_rate_limiter_refuses_a_wait_past_the_deadline() -> None:
    limiter = RateLimiter(0.1, burst=1)
    assert limiter.acquire(time.monotonic() + 1)
    started = time.monotonic()
    assert not limiter.acquire(time.monotonic() + 1) and time.monotonic() - started < 0.5


def test_retry_after_as_an_http_date_counts_from_the_responses_date() -> None:
    """It used to be ignored (a jittered backoff of a fraction of a second came instead)."""
    headers = {"Retry-After": "Mon, 07 Dec 2026 12:00:07 GMT", "Date": "Mon, 07 Dec 2026 12:00:00 GMT"}
    http = Scripted([_Response(429, headers), _Response(200, {}, b'{"ok": 1}')])
    assert http.get_body("/v3/x")[0] == b'{"ok": 1}' and http.sleeps == [7.0]


@pytest.mark.parametrize("value", ["soon", "inf", "nan", "-3", "Mon, 07 Dec 2026 11:00:00 GMT"])
def test_retry_after_that_says_nothing_usable_is_no_wait_or_the_backoff(value: str) -> None:
    headers = {"Retry-After": value, "Date": "Mon, 07 Dec 2026 12:00:00 GMT"}
    http = Scripted([_Response(503, headers), _Response(200, {}, b"{}")])
    http.get_body("/v3/x")
    assert len(http.sleeps) == 1 and 0 <= http.sleeps[0] <= 0.5


def test_a_deadline_error_never_shows_the_key_a_server_echoed() -> None:
    body = b'{"status": "ERROR", "error": "upstream refused Bearer k-123 (apiKey=k-123)"}'
    http = Scripted([_Response(503, {"Retry-After": "3600"}, body)], key="k-123", request_deadline=120)
    with pytest.raises(DeadlineError) as info:
        http.get_body("/v3/x")
    assert "k-123" not in info.value.message and "upstream refused Bearer ***" in info.value.message


@pytest.mark.parametrize(("body", "said"), [
    (b'{"status": "ERROR", "error": "bad\\nline\\u001b[2J\\u001b[31mred"}',
     "/v3/x: 400 bad\\nline\\x1b[2J\\x1b[31mred"),
    (b"[" * 100_000 + b"]" * 100_000, "/v3/x: 400 non-JSON response"),
])
def test_an_error_body_is_quoted_on_one_printable_line(body: bytes, said: str) -> None:
    """A newline or a terminal's escape sequence from the server was printed as it was, and an
    error body nested deeper than the stack ended the run in an unexpected RecursionError."""
    with pytest.raises(ProviderError) as info:
        Scripted([_Response(400, {}, body)]).get_body("/v3/x")
    assert info.value.message == said and info.value.status == 400
