"""symbol -> ticker row lookups: exact and case-sensitive, unknown symbols -1."""

from __future__ import annotations

import numpy as np

from kapman.ingest.tickermap import TickerMap


def test_lookups_are_exact_and_case_sensitive() -> None:
    ids = np.arange(3 * 16, dtype=np.uint8).reshape(3, 16)
    tickers = TickerMap(["AAP", "AAp", "BRK.B"], ids)
    symbols = np.array(["AAp", "AAP", "aap", "BRK.B", "BRK.b", "", "ZZZ"], dtype=object)
    assert tickers.index_of(symbols).tolist() == [1, 0, -1, 2, -1, -1, -1]
    assert len(tickers) == 3 and tickers.index_of(np.array([], dtype=object)).dtype == np.intp
    assert TickerMap([], np.empty((0, 16), dtype=np.uint8)).index_of(symbols).tolist() == [-1] * 7
