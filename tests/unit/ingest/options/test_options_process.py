"""process.process_pages: raw pages -> the payload normalise_chain's rows encode to."""

from __future__ import annotations

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
