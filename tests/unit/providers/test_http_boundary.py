"""What a response may make PolygonHTTP do: the key goes only to the configured host, and a page
whose body is not JSON or is wrongly shaped is retried, then fails with what was received."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kapman.errors import ProviderError, TransientProviderError
from kapman.providers.http import ForeignURLError, PolygonHTTP, follow, page_results
from tests.support.canned_http import Canned, Response, chain


def page(next_url: Any = None, results: Any = None) -> bytes:
    body: dict[str, Any] = {"status": "OK", "results": [{"a": 1}] if results is None else results}
    if next_url is not None:
        body["next_url"] = next_url
    return json.dumps(body).encode()


@pytest.mark.parametrize("next_url", [
    "@evil.example/v3/x?cursor=c1",
    ".evil.example/v3/x?cursor=c1",
    ":443@evil.example/v3/x?cursor=c1",
    "//evil.example/v3/x?cursor=c1",
    "ftp://evil.example/v3/x?cursor=c1",
    "v3/x?cursor=c1",
])
@pytest.mark.parametrize("raw", [False, True])
def test_a_next_url_without_a_scheme_is_never_glued_to_the_base(next_url: str, raw: bool) -> None:
    http = Canned({"first": page(next_url)})
    pages = http.paginate_raw("/v3/x", {"limit": 1}) if raw else http.paginate("/v3/x", {"limit": 1})
    with pytest.raises(ForeignURLError) as info:
        list(pages)
    assert http.asked == ["http://api.test/v3/x?limit=1"]  # nothing sent elsewhere
    message = info.value.message
    assert message.startswith("/v3/x: page 1's next_url ") and "not followed" in message
    assert "the API key is sent only to http://api.test" in message and "secret-key-42" not in message
    assert not info.value.transient


def test_glueing_would_have_named_another_host() -> None:
    """The reproduction: base + next_url is another host's URL with the key in its header."""
    from urllib.parse import urlsplit
    for next_url in ("@evil.example/v3/x", ".evil.example/v3/x", ":443@evil.example/v3/x"):
        assert urlsplit("http://api.test" + next_url).hostname != "api.test"
        with pytest.raises(ForeignURLError):
            follow("http://api.test", next_url)


def test_an_absolute_next_url_keeps_only_its_path_and_query() -> None:
    assert follow("http://api.test:8080", "https://api.massive.com/v3/x?cursor=c1") == "http://api.test:8080/v3/x?cursor=c1"
    assert follow("http://api.test", "/v3/x?cursor=c1") == "http://api.test/v3/x?cursor=c1"
    http = Canned(chain(3))
    assert len(list(http.paginate("/v3/x", {"limit": 2}))) == 3
    assert all(url.startswith("http://api.test/v3/x?") for url in http.asked)


@pytest.mark.parametrize(("body", "said"), [
    (b"<html>oops secret-key-42</html>", "response is not JSON (received 31 bytes: '<html>oops ***</html>')"),
    (page(results={"a": 1}), "wrongly shaped page: results is a JSON dict, not a list"),
    (page(next_url=7), "wrongly shaped page: next_url is 7, not a URL"),
    (page(next_url=["u"]), "wrongly shaped page: next_url is ['u'], not a URL"),
])
@pytest.mark.parametrize("raw", [False, True])
def test_a_bad_200_is_retried_then_fails_with_what_was_received(body: bytes, said: str, raw: bool) -> None:
    http = Canned({"first": body}, max_retries=2)
    pages = http.paginate_raw("/v3/x", {}) if raw else http.paginate("/v3/x", {})
    with pytest.raises(TransientProviderError) as info:
        for got in pages:  # a raw page's results are checked where they are decoded
            if raw:
                page_results(got)
    assert said in info.value.message and "secret-key-42" not in info.value.message
    if http.sleeps or not raw:  # refused by the fetch: retried
        assert len(http.asked) == 3 and len(http.sleeps) == 2
        assert info.value.message.endswith("(gave up after 3 attempts)")


def test_a_bad_200_then_a_good_one_is_just_a_retry() -> None:
    answers = [b"not json", page()]

    class Flaky(Canned):
        def _answer(self, method: str, url: str, **kw: Any) -> Any:
            self.asked.append(url)
            return Response(answers.pop(0))

    http = Flaky({})
    assert list(http.paginate("/v3/x", {})) == [[{"a": 1}]]
    assert len(http.asked) == 2


def test_a_url_that_cannot_be_parsed_is_not_retried() -> None:
    http = PolygonHTTP("http://api.test", "k", sleep=lambda _: None)
    calls = []

    def request(*args: Any, **kw: Any) -> Any:
        import urllib3
        calls.append(1)
        raise urllib3.exceptions.LocationParseError("http://api.test:99999999/x")

    http._pool.request = request  # type: ignore[method-assign]
    with pytest.raises(ProviderError) as info:
        http.get_body("/v3/x")
    assert calls == [1] and not info.value.transient and "cannot be requested" in info.value.message


@pytest.mark.parametrize("next_url", ["/v3/x?cursor=a\r\nHost: evil", "/v3/x?cursor=a b", "/v3/x\x00"])
def test_a_next_url_with_control_characters_is_not_followed(next_url: str) -> None:
    http = Canned({"first": page(next_url)})
    with pytest.raises(ForeignURLError, match="holds spaces or control characters; not followed"):
        list(http.paginate("/v3/x", {}))
    assert len(http.asked) == 1


def test_what_was_received_masks_credentials_it_echoes() -> None:
    from kapman.providers.http import received
    shown = received(b'<p>apiKey=abc123&x=1 "apiKey": "zzz999" Authorization: Bearer tok-42</p>')
    assert "abc123" not in shown and "zzz999" not in shown and "tok-42" not in shown
    assert shown.startswith("received 72 bytes: '<p>apiKey=***&x=1")


def test_a_next_url_that_cannot_be_parsed_fails_at_once() -> None:
    """An unparseable URL used to be retried as a transient error, seven attempts."""
    http = Canned({"first": page("http://[::1/v3/x?cursor=c1")})
    with pytest.raises(ForeignURLError, match=r"is not a URL \(Invalid IPv6 URL\); not followed"):
        list(http.paginate("/v3/x", {}))
    assert len(http.asked) == 1 and http.sleeps == []


@pytest.mark.parametrize("status", ["ERROR", "NOT_AUTHORIZED", "not_found"])
@pytest.mark.parametrize("raw", [False, True])
def test_a_200_whose_status_is_an_errors_is_no_page(status: str, raw: bool) -> None:
    """Its missing results and next_url used to read as the list's last page: a reference list cut
    short there marked every ticker after it inactive."""
    bodies = chain(3)
    bodies["c1"] = json.dumps({"status": status, "request_id": "r", "error": "Internal error"}).encode()
    http = Canned(bodies, max_retries=2)
    pages = http.paginate_raw("/v3/x", {"limit": 2}) if raw else http.paginate("/v3/x", {"limit": 2})
    with pytest.raises(TransientProviderError) as info:
        list(pages)
    assert info.value.message.startswith(f"/v3/x: wrongly shaped page: status is {status!r}, an error's (received ")
    assert "Internal error" in info.value.message and info.value.message.endswith("(gave up after 3 attempts)")
    assert len(http.asked) == 4 and len(http.sleeps) == 2


def test_a_status_the_api_gives_with_data_is_a_page() -> None:
    bodies = chain(2)
    bodies["c1"] = json.dumps({"status": "DELAYED", "results": [{"a": 1}]}).encode()
    assert list(Canned(bodies).paginate("/v3/x", {})) == [json.loads(bodies["first"])["results"], [{"a": 1}]]


def test_a_refused_next_url_never_shows_the_key() -> None:
    http = Canned({"first": page("@evil.example/v3/x?apiKey=secret-key-42&cursor=c1")})
    with pytest.raises(ForeignURLError) as info:
        list(http.paginate("/v3/x", {}))
    assert "secret-key-42" not in info.value.message and "apiKey=***" in info.value.message
