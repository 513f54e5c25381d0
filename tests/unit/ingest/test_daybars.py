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


DAY = __import__("datetime").date(2025, 12, 19)  # START is its 00:00 in New York


def file_with(header: str, *rows: str) -> bytes:
    return gzip.compress((header + "\n" + "\n".join(rows) + "\n").encode(), mtime=0)


@pytest.mark.parametrize(("close", "reason"), [
    ("inf", "non_finite"), ("1e400", "non_finite"), ("1e308", "price_out_of_range"), ("-inf", "non_finite"),
])
def test_prices_must_be_finite_and_in_range(close: str, reason: str) -> None:
    """inf, 1e308 and 1e400 used to be stored (and blanked the next day's indicators)."""
    data = day_file(row("AAPL"), f"MSFT,1000,10,{close},11,9.5,{START},25")
    parsed = parse_day_file(data, "k", DAY)
    assert parsed.symbols.tolist() == ["AAPL"] and parsed.rejected == {reason: 1}
    assert parsed.samples[reason][0].startswith("line 3: MSFT has ")
    assert parsed.refused.tolist() == ["MSFT"]


def test_volumes_and_transactions_in_bigint_range() -> None:
    data = day_file(row("A"), f"B,1e19,10,10.5,11,9.5,{START},25", f"C,5,10,10.5,11,9.5,{START},1e30",
                    f"D,5,10,10.5,11,9.5,{START},2.5", f"E,5,10,10.5,11,9.5,{START},")
    parsed = parse_day_file(data, "k", DAY)
    assert parsed.symbols.tolist() == ["A", "E"] and np.isnan(parsed.transactions[1])
    assert parsed.rejected == {"volume_out_of_range": 1, "bad_transactions": 2}


def test_rows_of_another_day_are_rejected_and_named() -> None:
    day_before = START - 86_400 * 10**9
    data = day_file(row("A"), f"B,5,10,10.5,11,9.5,{day_before},25", f"C,5,10,10.5,11,9.5,{START + 86_400 * 10**9},2")
    parsed = parse_day_file(data, "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and parsed.rejected == {"other_day": 2}
    assert parsed.samples["other_day"][0] == "line 3: B has a window_start outside the file's day 2025-12-19 (New York)"
    assert parse_day_file(data, "k").rows_rejected == 0  # no day given: nothing to compare with


def test_an_extra_column_is_noted_and_ignored() -> None:
    """One extra column used to reject every row of the file."""
    data = file_with(HEADER + ",vwap", f"A,1000,10,10.5,11,9.5,{START},25,10.2", f"B,10,20,20,20,20,{START},3,20")
    parsed = parse_day_file(data, "k.csv.gz", DAY)
    assert parsed.symbols.tolist() == ["A", "B"] and parsed.rows_rejected == 0
    assert parsed.transactions.tolist() == [25, 3]
    assert parsed.notes == ["k.csv.gz: column(s) vwap not known; ignored"]


def test_columns_are_read_by_name_in_any_order() -> None:
    data = file_with("close,ticker,open,high,low,volume", "10.5,A,10,11,9.5,1000")
    parsed = parse_day_file(data, "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and parsed.close.tolist() == [10.5] and parsed.volume.tolist() == [1000]
    assert np.isnan(parsed.transactions).all()
    assert parsed.notes == ["k: no window_start, transactions column; stored as NULL"]


def test_without_transactions_the_rows_load_with_null() -> None:
    data = file_with("ticker,volume,open,close,high,low,window_start", f"A,1000,10,10.5,11,9.5,{START}")
    parsed = parse_day_file(data, "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and np.isnan(parsed.transactions).all() and parsed.rows_rejected == 0


def test_a_missing_required_column_fails_the_file() -> None:
    data = file_with("ticker,volume,open,high,low,window_start,transactions", f"A,1000,10,11,9.5,{START},2")
    with pytest.raises(InputError, match=r"^k:1: header lacks the required column\(s\) close \(required: "):
        parse_day_file(data, "k", DAY)
    with pytest.raises(InputError, match=r"^k:1: header repeats the column\(s\) open"):
        parse_day_file(file_with(HEADER + ",open", row("A") + ",10"), "k", DAY)


def test_an_infinite_price_beside_an_empty_transactions_is_still_refused() -> None:
    data = day_file(row("A"), f"B,5,10,inf,11,9.5,{START},", f"C,5,-inf,10.5,11,9.5,{START},")
    parsed = parse_day_file(data, "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and parsed.rejected == {"non_finite": 2}


def test_a_stray_key_that_names_no_day_is_not_a_day_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A mirror file named 2025-13-45.csv.gz used to stop the whole listing with a ValueError."""
    from datetime import date

    from kapman.providers.flatfiles import MirrorSource, key_date
    assert key_date("x/2025/12/2025-13-45.csv.gz") is None and key_date("x/2025/12/2025-12-19.csv.gz") == DAY
    folder = tmp_path / "p" / "2025" / "12"
    folder.mkdir(parents=True)
    (folder / "2025-13-45.csv.gz").write_bytes(day_file(row("A")))
    (folder / "2025-12-18.csv.gz").mkdir()  # a directory named like a file
    (folder / "2025-12-19.csv.gz").write_bytes(day_file(row("A")))
    refs = MirrorSource(tmp_path, "p").list_files(date(2025, 12, 1), date(2025, 12, 31))
    assert [r.day for r in refs] == [DAY]


def test_a_grouped_result_that_is_not_an_object_is_a_malformed_row() -> None:
    """It used to fail the whole date."""
    from kapman.ingest.daybars import parse_grouped
    good = {"T": "AAPL", "v": 10, "o": 20, "c": 20, "h": 20, "l": 20, "n": 1}
    parsed = parse_grouped([good, "AAPL,1,2", None, {**good, "T": "MSFT"}], "rest/2025-12-19")
    assert parsed.symbols.tolist() == ["AAPL", "MSFT"] and parsed.rejected == {"malformed": 2}
    assert parsed.samples["malformed"] == ["result 2: not an object", "result 3: not an object"]


@pytest.mark.parametrize("header", ["\ufeff" + HEADER, ",".join(f'"{n}"' for n in HEADER.split(",")), HEADER.upper()])
def test_a_header_with_a_bom_quotes_or_capitals_is_read_by_name(header: str) -> None:
    parsed = parse_day_file(file_with(header, row("A")), "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and parsed.rows_rejected == 0 and parsed.notes == []


def test_unnamed_and_repeated_unknown_columns_are_ignored() -> None:
    parsed = parse_day_file(file_with(HEADER + ",note,note,,", row("A") + ",x,y,,"), "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and parsed.rows_rejected == 0
    assert parsed.notes == ["k: column(s) note, note, (unnamed), (unnamed) not known; ignored"]
