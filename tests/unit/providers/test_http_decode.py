"""decode_json: orjson first, the stdlib for what orjson refuses, the same errors."""

from __future__ import annotations

import json
import math

import pytest

from kapman.errors import ProviderError, TransientProviderError
from kapman.providers.http import decode_json


def decode(body: bytes) -> dict:
    return decode_json(body, "/v3/x", "AAPL")


def test_ordinary_body() -> None:
    body = b'{"results": [{"greeks": null, "strike_price": 150.1, "open_interest": 12}], "status": "OK"}'
    assert decode(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [b'{"iv": NaN, "x": Infinity}', b'\xef\xbb\xbf{"a": 1}', '{"a": "é"}'.encode("utf-16"), b'{"a": "\\ud800"}'],
    ids=["nan-literals", "bom", "utf-16", "lone-surrogate"],
)
def test_what_orjson_refuses_decodes_as_before(body: bytes) -> None:
    got, want = decode(body), json.loads(body)
    assert got.keys() == want.keys()
    for key in want:
        if isinstance(want[key], float) and math.isnan(want[key]):
            assert math.isnan(got[key])
        else:
            assert got[key] == want[key]


def test_errors_unchanged() -> None:
    with pytest.raises(TransientProviderError, match="not JSON"):
        decode(b"<html>502</html>")
    with pytest.raises(TransientProviderError, match="not JSON"):
        decode(b"")
    with pytest.raises(ProviderError, match="unexpected response shape") as info:
        decode(b"[1, 2]")
    assert not isinstance(info.value, TransientProviderError)


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_nesting_deeper_than_the_stack_is_not_json(prefix: bytes) -> None:
    """orjson refuses it (depth 1024) and the json module used to raise RecursionError, which
    failed an options symbol as an unexpected error instead of a page that is not JSON."""
    body = prefix + b'{"status": "OK", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "results": []}'
    with pytest.raises(TransientProviderError, match=r"^/v3/x: response is not JSON \(received 200") as info:
        decode(body)
    assert info.value.symbol == "AAPL"


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_bytes_that_are_not_utf8_decode_as_replacement_characters(prefix: bytes) -> None:
    """Not the whole page refused as 'not JSON': the value holding them is checked where it is used."""
    assert decode(prefix + b'{"results": [{"ticker": "A\xffB"}, {"ticker": "C"}]}') == \
        {"results": [{"ticker": "A\ufffdB"}, {"ticker": "C"}]}
