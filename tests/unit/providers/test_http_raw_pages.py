"""PolygonHTTP.paginate_raw: paginate's pages undecoded, next_url read from the envelope alone."""

from __future__ import annotations

import json

import orjson
import pytest

from kapman.errors import PaginationError, ProviderError, TransientProviderError
from kapman.providers.http import PolygonHTTP, page_results
from tests.support.canned_http import Canned, chain


@pytest.mark.parametrize("results_last", [False, True])
@pytest.mark.parametrize("spaced", [False, True])
def test_same_pages_and_requests_as_paginate(results_last: bool, spaced: bool) -> None:
    decoded, raw = Canned(chain(4, results_last=results_last, spaced=spaced)), Canned(chain(4))
    raw.bodies = decoded.bodies
    want = list(decoded.paginate("/v3/x", {"limit": 2}, symbol="X"))
    got = list(raw.paginate_raw("/v3/x", {"limit": 2}, symbol="X"))
    assert raw.asked == decoded.asked and len(got) == 4
    assert [orjson.loads(p.body)["results"] for p in got] == want
    assert [p.next_url for p in got] == [orjson.loads(p.body).get("next_url") for p in got]
    assert got[-1].next_url is None and got[0].shown == "/v3/x"


@pytest.mark.parametrize(
    "body",
    [
        b'{"results": [1, [2]], "status": "OK", "next_url": "u?cursor=]"}',
        b' \n{ "results" :\n[{"a": []}] , "meta": {"x": [1]}, "next_url": "u"}\n',
        b'{"request_id": "x", "next_url": "u", "results": [{"b": "]"}]}',
        b'{"results": [], "next_url": null}',
    ],
)
def test_envelope_is_the_page_without_its_results(body: bytes) -> None:
    want = {**json.loads(body), "results": None}
    assert PolygonHTTP.envelope(body) == want


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "OK"}',  # no results
        b'{"results": null, "next_url": "u"}',
        b'["results", 1]',
        b'\xef\xbb\xbf{"results": [1], "next_url": "u"}',  # a BOM: the stdlib decodes it
        b'{"results": [1], "next_url": NaN}',
        b'{"results": [1], "next_url": "u"',  # truncated
        b"<html>502</html>",
    ],
)
def test_no_envelope_when_it_cannot_be_read_alone(body: bytes) -> None:
    assert PolygonHTTP.envelope(body) is None


def test_unreadable_envelopes_decode_whole_with_get_jsons_errors() -> None:
    bodies = chain(3)
    bodies["c1"] = b'\xef\xbb\xbf' + bodies["c1"]
    assert len(list(Canned(bodies).paginate_raw("/v3/x", {"limit": 2}))) == 3
    bodies["c1"] = b"<html>502</html>"
    # A 200 that is not JSON is retried, then names what was received.
    for pages in (Canned(bodies).paginate("/v3/x", {"limit": 2}), Canned(bodies).paginate_raw("/v3/x", {"limit": 2})):
        with pytest.raises(TransientProviderError, match=r"^/v3/x: response is not JSON \(received 16 bytes: "
                           r"'<html>502</html>'\) \(gave up after 7 attempts\)$"):
            list(pages)
    bodies["c1"] = b'[1, 2]'
    with pytest.raises(ProviderError, match="unexpected response shape"):
        list(Canned(bodies).paginate_raw("/v3/x", {"limit": 2}))


def test_cursor_loops_and_page_cap_as_paginate() -> None:
    bodies = chain(3)
    bodies["c2"] = bodies["c1"]  # back to c2
    for pages in (Canned(bodies).paginate("/v3/x", {"limit": 2}), Canned(bodies).paginate_raw("/v3/x", {"limit": 2})):
        with pytest.raises(PaginationError, match="repeated a pagination cursor after page 3"):
            list(pages)
    decoded, raw = Canned(chain(5), max_pages=3), Canned(chain(5), max_pages=3)
    for pages in (decoded.paginate("/v3/x", {"limit": 2}), raw.paginate_raw("/v3/x", {"limit": 2})):
        with pytest.raises(PaginationError, match="more than 3 pages"):
            list(pages)
    assert decoded.asked == raw.asked and len(raw.asked) == 3


def test_an_array_after_the_results_is_no_envelope_and_the_pages_are_all_read() -> None:
    """Its ``]`` split the page too: the envelope lost next_url, the fetch stopped after page 1 and
    the symbol failed as 'misread' on every run."""
    body = b'{"results": [{"a": [1]}], "status": "OK", "next_url": "u?cursor=c1", "warnings": ["x"]}'
    assert PolygonHTTP.envelope(body) is None
    bodies = {cursor: orjson.dumps({**orjson.loads(page), "warnings": ["late", [1]]})
              for cursor, page in chain(3).items()}
    raw, decoded = Canned(bodies), Canned(bodies)
    got = list(raw.paginate_raw("/v3/x", {"limit": 2}))
    assert [page_results(p) for p in got] == list(decoded.paginate("/v3/x", {"limit": 2})) and len(got) == 3
