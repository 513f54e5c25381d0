"""process.process_pages: raw pages -> the payload normalise_chain's rows encode to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from kapman.db import bulk
from kapman.errors import ProviderError, TransientProviderError
from kapman.ingest.options import workers as options_workers
from kapman.ingest.options.normalise import TYPES, normalise_chain
from kapman.ingest.options.process import process_pages
from kapman.providers.http import PolygonHTTP, RawPage
from tests.support.canned_http import Canned, chain

SNAPSHOT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)


def test_process_pages_is_normalise_chain_of_the_decoded_pages() -> None:
    http = Canned(chain(4))
    tid = uuid4()
    pages = list(http.paginate_raw("/v3/x", {"limit": 2}, symbol="X"))
    results = [r for page in Canned(chain(4)).paginate("/v3/x", {"limit": 2}) for r in page]
    want = normalise_chain(results, SNAPSHOT, tid)
    got = process_pages(pages, SNAPSHOT, tid, "X")
    assert got.payload == bulk.encode_binary_rows(TYPES, want.rows) and got.rows == len(want.rows) == 8
    assert (got.contracts, got.dropped, got.samples) == (want.contracts, want.dropped, want.samples)


def test_process_pages_fails_like_decode_json_and_checks_the_envelope() -> None:
    body = b'{"results": [{"a": 1}, oops], "next_url": "u"}'
    page = RawPage(body, "/v3/x", PolygonHTTP.envelope(body)["next_url"])  # type: ignore[index]
    with pytest.raises(TransientProviderError, match=r"^/v3/x: response is not JSON \(received 46 bytes: ") as info:
        process_pages([page], SNAPSHOT, uuid4(), "X")
    assert info.value.symbol == "X" and "secret" not in repr(info.value.__dict__)
    misread = RawPage(b'{"results": [], "next_url": "v"}', "/v3/x", "u")
    with pytest.raises(ProviderError, match="next_url was misread"):
        process_pages([misread], SNAPSHOT, uuid4(), "X")


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 1), (3, 2), (64, 2)])
def test_default_workers_leave_a_cpu_to_the_fetching_process(
    cpus: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(options_workers.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert options_workers.default_workers() == workers


def page_of(*contracts: str, prefix: str = "", extra: str = "") -> RawPage:
    body = f'{prefix}{{"status":"OK",{extra}"results":[{",".join(contracts)}]}}'
    return RawPage(body.encode(), "/v3/snapshot/options/AAPL", None)


def snapshot_result(strike: int, ticker: str | None = None, quote_ns: int = 1_734_634_799_123_456_789) -> str:
    ticker = ticker or f"O:AAPL260116C{strike * 1000:08d}"
    return ('{"details":{"contract_type":"call","expiration_date":"2026-01-16","shares_per_contract":100,'
            f'"strike_price":{strike},"ticker":"{ticker}"}},'
            f'"last_quote":{{"bid":1.0,"ask":1.1,"last_updated":{quote_ns}}}}}')


@pytest.mark.parametrize(("prefix", "extra"), [("\ufeff", ""), ("", '"x":NaN,')], ids=["bom", "nan"])
def test_a_time_beyond_datetime_on_a_json_module_page_is_null(prefix: str, extra: str) -> None:
    """A BOM or a NaN anywhere sends the page to the json module, which keeps 10**22 an int: its
    time used to raise OverflowError and fail the symbol ("unexpected OverflowError")."""
    page = page_of(snapshot_result(150, quote_ns=10**22), snapshot_result(160), prefix=prefix, extra=extra)
    got = process_pages([page], SNAPSHOT, uuid4(), "AAPL")
    want = normalise_chain([json.loads(snapshot_result(150, quote_ns=10**22)), json.loads(snapshot_result(160))],
                           SNAPSHOT, got.ticker_id)
    assert [(r[5], r[18]) for r in want.rows] == [
        ("O:AAPL260116C00150000", None),
        ("O:AAPL260116C00160000", datetime(2024, 12, 19, 18, 59, 59, 123456, tzinfo=UTC))]
    assert (got.rows, dict(got.dropped)) == (2, {})
    assert got.payload == bulk.encode_binary_rows(TYPES, want.rows)


def test_a_lone_surrogate_in_a_ticker_drops_that_contract_not_the_page() -> None:
    """orjson refuses the escape, the json module decodes it, and the COPY encoder used to raise
    UnicodeEncodeError: the good contract beside it was lost too."""
    page = page_of(snapshot_result(150, ticker="O:AAPL\\ud800"), snapshot_result(160))
    got = process_pages([page], SNAPSHOT, uuid4(), "AAPL")
    assert (got.rows, dict(got.dropped)) == (1, {"malformed": 1})
    assert got.samples == ["contract ticker 'O:AAPL\\ud800' is not an option ticker "
                           "(O:, root, YYMMDD, C or P, 8-digit strike)"]
    want = normalise_chain([json.loads(snapshot_result(160))], SNAPSHOT, got.ticker_id)
    assert got.payload == bulk.encode_binary_rows(TYPES, want.rows)


def test_bytes_that_are_not_utf8_drop_their_contract_not_the_page() -> None:
    """Such a byte used to make the whole page 'not JSON', and the symbol failed."""
    body = page_of(snapshot_result(150, ticker="O:AAPL\xff"), snapshot_result(160)).body.replace(b"\xc3\xbf", b"\xff")
    got = process_pages([RawPage(body, "/v3/snapshot/options/AAPL", None)], SNAPSHOT, uuid4(), "AAPL")
    assert (got.rows, dict(got.dropped)) == (1, {"malformed": 1})
    assert got.samples == ["contract ticker 'O:AAPL\ufffd' is not an option ticker "
                           "(O:, root, YYMMDD, C or P, 8-digit strike)"]
