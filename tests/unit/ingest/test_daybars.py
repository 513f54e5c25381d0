"""The day-file parser: symbols kept as written, ambiguous symbols rejected, bad rows by reason."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from kapman.errors import InputError
from kapman.ingest.daybars import parse_day_file

HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
START = 1766120400000000000


def day_file(*rows: str) -> bytes:
    return gzip.compress((HEADER + "\n" + "\n".join(rows) + "\n").encode(), mtime=0)


def row(symbol: str, close: float = 10.5, volume: float = 1000) -> str:
    return f"{symbol},{volume:g},10,{close:g},11,9.5,{START},25"


def test_symbols_keep_their_case() -> None:
    parsed = parse_day_file(day_file(row("AAP", 10.5), row("AAp", 10.2), row("TpC", 10.6), row("TPC", 10.8)), "k")
    assert parsed.symbols.tolist() == ["AAP", "AAp", "TpC", "TPC"]
    assert parsed.close.tolist() == [10.5, 10.2, 10.6, 10.8]
    assert parsed.rows_rejected == 0 and parsed.ambiguous == []


def test_surrounding_blanks_are_dropped_but_not_case() -> None:
    parsed = parse_day_file(day_file(row(" brk.b "), row("BRK.A")), "k")
    assert parsed.symbols.tolist() == ["brk.b", "BRK.A"]


def test_a_symbol_twice_is_rejected_with_both_samples_and_the_rest_kept() -> None:
    data = day_file(row("AAPL", 10.5), row("MSFT", 10.2), row("AAPL", 10.7, volume=2000), row("aapl", 10.1))
    parsed = parse_day_file(data, "us_stocks_sip/day_aggs_v1/2025/12/2025-12-19.csv.gz")
    assert parsed.symbols.tolist() == ["MSFT", "aapl"]
    assert parsed.close.tolist() == [10.2, 10.1]
    assert parsed.rejected == {"duplicate_symbol": 2}
    assert parsed.ambiguous == ["AAPL"]
    (sample,) = parsed.samples["duplicate_symbol"]
    assert sample == ("AAPL appears 2 times, none kept: line 2 o=10 h=11 l=9.5 c=10.5 v=1000; "
                      "line 4 o=10 h=11 l=9.5 c=10.7 v=2000")
    assert parsed.rows_read == 4


def test_a_repeated_symbol_whose_other_row_is_invalid_is_still_ambiguous() -> None:
    bad = f"XYZ,100,10,10.5,9,11,{START},3"  # high < low
    parsed = parse_day_file(day_file(row("XYZ"), bad, row("ABC")), "k")
    assert parsed.symbols.tolist() == ["ABC"]
    assert parsed.rejected == {"high_below_low": 1, "duplicate_symbol": 1}
    assert parsed.ambiguous == ["XYZ"]


def test_three_rows_of_one_symbol_all_go() -> None:
    parsed = parse_day_file(day_file(row("Q"), row("Q", 10.6), row("Q", 10.7), row("R")), "k")
    assert parsed.symbols.tolist() == ["R"]
    assert parsed.rejected == {"duplicate_symbol": 3}
    assert parsed.samples["duplicate_symbol"][0].endswith("(+1 more)")


def test_bad_rows_by_reason_with_lines() -> None:
    parsed = parse_day_file(day_file(row("A"), "NOT,A,ROW", f"B,n/a,1,1,1,1,{START},1", row("C")), "f")
    assert parsed.symbols.tolist() == ["A", "C"]
    assert parsed.rejected == {"malformed": 1, "non_numeric": 1}
    assert parsed.samples["malformed"] == ["line 3: wrong number of fields"]
    assert parsed.samples["non_numeric"] == ["line 4: B has a non-numeric volume"]
    assert np.isnan(parsed.transactions).sum() == 0


def test_not_gzip_names_the_file() -> None:
    with pytest.raises(InputError, match="^f.csv.gz: not a valid gzip file"):
        parse_day_file(b"plain text", "f.csv.gz")


def test_grouped_daily_results_are_validated_like_a_file() -> None:
    from kapman.ingest.daybars import parse_grouped

    results = [{"T": "AAPL", "v": 1000.5, "o": 10, "c": 10.5, "h": 11, "l": 9.5, "t": 1, "n": 7},
               {"T": "AAp", "v": 10, "o": 20, "c": 20, "h": 20, "l": 20, "t": 1},          # no n
               {"T": "BAD", "v": 10, "o": 20, "c": 25, "h": 21, "l": 19, "t": 1, "n": 1},
               {"T": "Q", "v": 10, "o": 1, "c": 1, "h": 1, "l": 1, "n": 1},
               {"T": "Q", "v": 11, "o": 1, "c": 1, "h": 1, "l": 1, "n": 1}]
    parsed = parse_grouped(results, "rest/2025-12-19")
    assert parsed.symbols.tolist() == ["AAPL", "AAp"]
    assert parsed.volume.tolist() == [1000.5, 10.0]
    assert parsed.transactions[0] == 7 and np.isnan(parsed.transactions[1])
    assert parsed.rejected == {"close_outside_range": 1, "duplicate_symbol": 2}
    assert parsed.samples["close_outside_range"] == ["result 3: BAD has close outside [low, high]"]
    assert parsed.samples["duplicate_symbol"][0].startswith("Q appears 2 times, none kept: result 4 ")
