"""A2's client-side matching of bars to tickers and its panel layout."""

from __future__ import annotations

import uuid

import numpy as np

from kapman.jobs.a2_local_ta import Bars, _match_ids, panels


def _raw(ids: list[uuid.UUID]) -> np.ndarray:
    return np.frombuffer(b"".join(i.bytes for i in ids), dtype=np.uint8).reshape(len(ids), 16).copy()


def test_each_bar_finds_its_ticker_and_strangers_get_minus_one() -> None:
    known = [uuid.uuid5(uuid.NAMESPACE_OID, s) for s in ("AAPL", "MSFT", "NVDA")]
    stranger = uuid.uuid5(uuid.NAMESPACE_OID, "ZZZZ")
    # same first 8 bytes as MSFT, different last 8: must not match
    twin = uuid.UUID(bytes=known[1].bytes[:8] + bytes(8))
    bars = [known[2], known[0], stranger, known[2], twin, known[1]]
    assert _match_ids(_raw(known), _raw(bars)).tolist() == [2, 0, -1, 2, -1, 1]


def test_tickers_sharing_a_uuid_half_still_match_in_full() -> None:
    a = uuid.UUID(bytes=bytes(range(16)))
    b = uuid.UUID(bytes=bytes(range(8)) + bytes(range(100, 108)))  # same first half as a
    assert _match_ids(_raw([a, b]), _raw([b, a, b])).tolist() == [1, 0, 1]


def test_no_tickers_and_no_bars() -> None:
    one = _raw([uuid.uuid4()])
    assert _match_ids(np.empty((0, 16), dtype=np.uint8), one).tolist() == [-1]
    assert _match_ids(one, np.empty((0, 16), dtype=np.uint8)).tolist() == []


def test_panels_are_left_aligned_per_ticker_whatever_the_bar_order() -> None:
    dates = np.array(["2025-01-03", "2025-01-02", "2025-01-06", "2025-01-02", "2025-01-06"], dtype="datetime64[D]")
    ticker = np.array([0, 0, 0, 1, 1])
    close = np.array([2.0, 1.0, 3.0, 10.0, 30.0])
    bars = Bars(ids=np.zeros((2, 16), dtype=np.uint8), ticker=ticker, date=dates, values={"close": close})
    p, pos = panels(bars)
    assert pos.tolist() == [1, 0, 2, 0, 1]
    np.testing.assert_array_equal(p["close"], [[1.0, 10.0], [2.0, 30.0], [3.0, np.nan]])
