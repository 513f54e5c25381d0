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


def test_rows_are_written_in_the_ids_byte_order() -> None:
    """match_rows orders a file's known rows by ticker id as the uuid index does (bytes, unsigned),
    whatever order the map and the file list them in; unknown symbols are set aside."""
    from kapman.ingest.ohlcv_write import match_rows

    rng = np.random.default_rng(7)
    ids = rng.integers(0, 256, size=(500, 16), dtype=np.uint8)
    ids[:3, :8] = [0xFF] * 8, [0x00] * 8, [0x80] * 8      # high bits, where a signed order would differ
    ids[3, :8] = ids[4, :8]                               # equal first halves: the second decides
    tickers = TickerMap([f"T{i}" for i in range(500)], ids)
    symbols = np.array([f"T{i}" for i in rng.permutation(500)] + ["NOPE"], dtype=object)
    known, found, unknown = match_rows(tickers, symbols)
    assert [bytes(r) for r in found] == sorted(bytes(r) for r in ids)
    assert [symbols[i] for i in known] == [f"T{tickers.index_of(np.array([s], dtype=object))[0]}"
                                           for s in symbols[known]]
    assert unknown.tolist() == ["NOPE"]


def test_a_symbol_twice_keeps_both_rows_in_id_order() -> None:
    from kapman.ingest.ohlcv_write import match_rows

    ids = np.array([[9] * 16, [1] * 16], dtype=np.uint8)
    known, found, _ = match_rows(TickerMap(["A", "B"], ids), np.array(["A", "B", "A"], dtype=object))
    assert known.tolist() == [1, 0, 2] and [r[0] for r in found] == [1, 9, 9]
