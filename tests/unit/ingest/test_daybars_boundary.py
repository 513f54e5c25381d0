"""Day files and grouped daily at their boundaries: counts at bigint's edge, VWAPs the bar
contradicts, booleans as numbers, strings that are not symbols, results that are not objects.
Each bad row is rejected by reason (or its VWAP dropped, noted); the other rows are kept."""

from __future__ import annotations

import gzip
from datetime import date

import numpy as np
import pytest

from kapman.errors import InputError, NotFoundError
from kapman.ingest.daybars import ParsedDay, parse_day_file, parse_grouped
from kapman.ingest.ohlcv import _parse_grouped_body
from kapman.ingest.ohlcv_write import encode_day
from kapman.providers.flatfiles import FileRef

HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
START = 1766120400000000000      # 2025-12-19 00:00 New York, in ns
DAY = date(2025, 12, 19)
GOOD = {"T": "MSFT", "v": 5, "o": 10, "c": 10.5, "h": 11, "l": 9.5, "n": 2}
BAD_SYMBOL = "is not a symbol (a letter, then letters, digits or '.', at most 20; or an index's I: before one)"


def day_file(*rows: str) -> bytes:
    return gzip.compress((HEADER + "\n" + "\n".join(rows) + "\n").encode(), mtime=0)


def line(symbol: str = "A", volume: object = 5, transactions: object = 25) -> str:
    return f"{symbol},{volume},10,10.5,11,9.5,{START},{transactions}"


# -- 1. counts at 2**63: float(2**63-1) is 2**63, and numpy's cast wraps it to -2**63 ----------------

@pytest.mark.parametrize("count", [2**63 - 512, 2**63 - 1, 2**63, 2**63 + 1024])
def test_transactions_a_bigint_cannot_hold_are_rejected(count: int) -> None:
    """They used to pass (``tx > float(2**63-1)`` is false at 2**63) and be stored as -2**63."""
    parsed = parse_day_file(day_file(line("A", transactions=count), line("C")), "k", DAY)
    assert parsed.symbols.tolist() == ["C"] and parsed.transactions.tolist() == [25.0]
    assert parsed.rejected == {"bad_transactions": 1}
    assert parsed.samples["bad_transactions"] == [
        "line 2: A has transactions that are not a whole number in 0..2**63-1"]


@pytest.mark.parametrize("count", [2**63 - 512, 2**63 - 1, 2**63, 2**63 + 1024])
def test_volumes_a_bigint_cannot_hold_are_rejected(count: int) -> None:
    parsed = parse_day_file(day_file(line("A", volume=count), line("C")), "k", DAY)
    assert parsed.symbols.tolist() == ["C"] and parsed.rejected == {"volume_out_of_range": 1}
    assert parsed.samples["volume_out_of_range"] == ["line 2: A has volume above 2**63-1"]


def test_the_largest_count_below_2_63_is_kept_exactly() -> None:
    largest = 2**63 - 1024                      # the float64 just below 2**63
    parsed = parse_day_file(day_file(line("A", volume=largest, transactions=largest)), "k", DAY)
    assert parsed.symbols.tolist() == ["A"] and parsed.rows_rejected == 0
    assert int(parsed.transactions[0]) == largest and int(parsed.volume[0]) == largest


def test_grouped_transactions_of_2_63_are_rejected() -> None:
    parsed = parse_grouped([{**GOOD, "T": "A", "n": 2**63}, GOOD], "r", DAY)
    assert parsed.symbols.tolist() == ["MSFT"] and parsed.rejected == {"bad_transactions": 1}


def test_the_encoder_refuses_a_count_it_would_wrap() -> None:
    parsed = ParsedDay(np.array(["A"], dtype=object), *(np.array([10.0]) for _ in range(4)), np.array([5.0]),
                       np.array([2.0**63]))
    with pytest.raises(InputError, match=r"a transactions value outside bigint's range reached the writer \(9\.22"):
        encode_day(DAY, np.zeros(1, dtype="S16"), parsed, np.array([0]))


# -- 2. grouped daily's VWAP: absent unless a finite number within [low, high] ± 1 % ----------------

def test_a_vwap_that_is_not_finite_or_outside_the_bar_is_stored_as_null_and_noted() -> None:
    """inf and 1e300 used to be stored as the day's VWAP."""
    vwaps = {"A": 1e300, "B": float("inf"), "C": 10.2, "D": 11.1, "E": 11.2, "F": 9.4, "G": 9.41, "H": True,
             "I": "abc", "J": -1}
    results = [{**GOOD, "T": t, "vw": vw} for t, vw in vwaps.items()] + [GOOD]
    parsed = parse_grouped(results, "rest/2025-12-19", DAY)
    assert parsed.symbols.tolist() == [*vwaps, "MSFT"] and parsed.rows_rejected == 0
    got = dict(zip(parsed.symbols.tolist(), parsed.vwap.tolist(), strict=True))
    assert {s: v for s, v in got.items() if not np.isnan(v)} == {"C": 10.2, "D": 11.1, "G": 9.41}
    assert parsed.notes == [
        "rest/2025-12-19: 7 result(s) with a vwap that is not a number within [low, high] (±1% of the price): "
        "stored as NULL (e.g. result 1: A vw=1e+300 l=9.5 h=11; result 2: B vw=inf l=9.5 h=11; "
        "result 5: E vw=11.2 l=9.5 h=11)"]


def test_a_column_of_float_vwaps_is_noted_as_numbers() -> None:
    parsed = parse_grouped([{**GOOD, "vw": 1e300}, {**GOOD, "T": "A", "vw": 10.0}], "r", DAY)
    assert parsed.vwap[1] == 10.0 and np.isnan(parsed.vwap[0])
    assert parsed.notes[0].endswith("(e.g. result 1: MSFT vw=1e+300 l=9.5 h=11)")


def test_an_absent_vwap_is_null_without_a_note() -> None:
    parsed = parse_grouped([GOOD, {**GOOD, "T": "A", "vw": None}], "r", DAY)
    assert np.isnan(parsed.vwap).all() and parsed.notes == []


# -- 3. booleans are not numbers ----------------------------------------------------------------------

def test_grouped_booleans_are_non_numeric() -> None:
    """``true`` everywhere used to be kept as a bar of price 1.0."""
    every = {"T": "A", "v": True, "o": True, "c": True, "h": True, "l": True, "n": True}
    assert parse_grouped([every], "r", DAY).rejected == {"non_numeric": 1}
    parsed = parse_grouped([{**GOOD, "T": "B", "n": True}, {**GOOD, "T": "C", "t": False}, GOOD], "r", DAY)
    assert parsed.symbols.tolist() == ["MSFT"] and parsed.rejected == {"non_numeric": 2}
    assert parsed.samples["non_numeric"] == ["result 2: C has a non-numeric window_start",   # by column
                                             "result 1: B has a non-numeric transactions"]


# -- 4. symbols --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("symbol", "shown"), [
    ("A$B", "'A$B'"), ("A B", "'A B'"), ("123", "'123'"), ("#A", "'#A'"), ("Äı", "'\\xc4\\u0131'"),
    ("\ufeffA", "'\\ufeffA'"), ("A\u200b", "'A\\u200b'"), ("A\x00B", "'A\\x00B'"),
    ("X" * 100, "'" + "X" * 30 + "'..."),
])
def test_a_day_file_row_whose_ticker_is_not_a_symbol_is_rejected(symbol: str, shown: str) -> None:
    """They used to be kept (and counted as unknown symbols: a NUL then broke the run ledger's JSON)."""
    parsed = parse_day_file(day_file(line("C"), line(symbol)), "k", DAY)
    assert parsed.symbols.tolist() == ["C"] and parsed.rejected == {"bad_symbol": 1}
    assert parsed.samples["bad_symbol"] == [f"line 3: {shown} {BAD_SYMBOL}"]
    assert parsed.refused.tolist() == [] and parsed.ambiguous == []


@pytest.mark.parametrize("symbol", ["", " "])
def test_a_blank_ticker_is_a_missing_field(symbol: str) -> None:
    """A blank ticker used to be kept as the symbol ''."""
    parsed = parse_day_file(day_file(line("C"), line(symbol)), "k", DAY)
    assert parsed.symbols.tolist() == ["C"] and parsed.rejected == {"missing_field": 1}


def test_real_symbol_shapes_are_kept() -> None:
    shapes = ["AAPL", "AAp", "BACpA", "TpC", "BRK.B", "brk.a", "GRP.U", "ZVZZT", "A", "ABCDEFGHIJKLMNOPQRST"]
    parsed = parse_day_file(day_file(*(line(s) for s in shapes)), "k", DAY)
    assert parsed.symbols.tolist() == shapes and parsed.rows_rejected == 0


def test_a_junk_symbol_twice_is_rejected_as_junk_not_named_ambiguous() -> None:
    parsed = parse_day_file(day_file(line("A\x00B"), line("A\x00B"), line("C")), "k", DAY)
    assert parsed.symbols.tolist() == ["C"] and parsed.rejected == {"bad_symbol": 2} and parsed.ambiguous == []


def test_a_sample_of_another_reason_escapes_a_junk_ticker() -> None:
    parsed = parse_day_file(day_file(line("A\x00B", volume="x"), line("C")), "k", DAY)
    assert parsed.rejected == {"non_numeric": 1}
    assert parsed.samples["non_numeric"] == ["line 2: 'A\\x00B' has a non-numeric volume"]


@pytest.mark.parametrize(("symbol", "reason"), [("", "missing_field"), (" ", "missing_field"),
                                                  ("A B", "bad_symbol"), ("A\x00", "bad_symbol"), (7, "missing_field")])
def test_grouped_tickers_are_checked_like_a_files(symbol: object, reason: str) -> None:
    parsed = parse_grouped([{**GOOD, "T": symbol}, GOOD], "r", DAY)
    assert parsed.symbols.tolist() == ["MSFT"] and parsed.rejected == {reason: 1}


# -- 5. grouped results that are not objects; an empty list ---------------------------------------------

REF = FileRef(key="rest/2025-12-19", day=DAY, etag="e", size=0)


@pytest.mark.parametrize(("body", "rows"), [(b'{"results":["x"]}', 1), (b'{"results":[null]}', 1),
                                            (b'{"results":[1,2]}', 2), (b'{"results":[[]]}', 1)])
def test_results_that_are_all_not_objects_are_malformed_rows(body: bytes, rows: int) -> None:
    """They used to raise AttributeError (.str accessor), which aborted the whole ohlcv run."""
    parsed = _parse_grouped_body(body, REF)
    assert parsed.symbols.tolist() == [] and parsed.rows_read == rows and parsed.rejected == {"malformed": rows}
    assert parsed.samples["malformed"][0] == "result 1: not an object"


def test_an_empty_results_list_is_an_empty_day() -> None:
    parsed = parse_grouped([], "r", DAY)
    assert parsed.rows_read == 0 and parsed.symbols.tolist() == [] and parsed.rows_rejected == 0
    with pytest.raises(NotFoundError, match="returned no bars for 2025-12-19"):
        _parse_grouped_body(b'{"results":[]}', REF)


# -- bytes that are not UTF-8: the row, not the file -------------------------------------------------

def test_a_row_with_bytes_that_are_not_utf8_is_rejected_and_the_rest_kept() -> None:
    """One such byte used to fail the whole file as an unreadable CSV."""
    raw = (HEADER + "\n" + line("MSFT") + "\n").encode() + line("M\xffFT").encode("latin-1") + b"\n" \
        + (line("AAPL", volume="5\xe9") + "\n").encode("latin-1") + (line("IBM") + "\n").encode()
    parsed = parse_day_file(gzip.compress(raw, mtime=0), "k.csv.gz", DAY)
    assert parsed.symbols.tolist() == ["MSFT", "IBM"] and parsed.rows_read == 4
    assert parsed.rejected == {"bad_symbol": 1, "non_numeric": 1}
    assert parsed.samples == {"bad_symbol": [f"line 3: 'M\\ufffdFT' {BAD_SYMBOL}"],
                              "non_numeric": ["line 4: AAPL has a non-numeric volume"]}


@pytest.mark.parametrize(("first", "kept"), [
    (b'{"T": "IBM", "vw": NaN, "v": 5, "o": 10, "c": 10.5, "h": 11, "l": 9.5}', ["IBM", "MSFT"]),
    (b'{"T": "IB\xffM", "v": 5, "o": 10, "c": 10.5, "h": 11, "l": 9.5}', ["MSFT"]),
], ids=["nan-literal", "not-utf8"])
def test_a_grouped_body_the_fetch_accepts_is_parsed_not_refused_whole(first: bytes, kept: list[str]) -> None:
    """The fetch decodes such a body (the json module's fallback) but the parse used orjson alone,
    and failed the whole date as 'not JSON'."""
    msft = b'{"T": "MSFT", "v": 5, "o": 10, "c": 10.5, "h": 11, "l": 9.5}'
    body = b'{"status": "OK", "results": [' + first + b", " + msft + b"]}"
    parsed = _parse_grouped_body(body, REF)
    assert parsed.symbols.tolist() == kept and parsed.rows_read == 2 and np.isnan(parsed.vwap).all()
    with pytest.raises(InputError, match=r"^rest/2025-12-19: grouped-daily response is not JSON \(received 4 bytes"):
        _parse_grouped_body(b"<htm", REF)


def test_a_file_that_inflates_past_the_largest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """It was decompressed whole, however large (a few MB of gzip inflate to GBs)."""
    from kapman.ingest import daybars
    monkeypatch.setattr(daybars, "MAX_FILE_BYTES", 2**20)
    bomb = gzip.compress((HEADER + "\n" + line() + "\n").encode() + b"\n" * 2**21, mtime=0)
    assert len(bomb) < 5000
    with pytest.raises(InputError, match=r"^k\.csv\.gz: decompresses to more than 1 MiB \(a day file is about 1 MiB\)"):
        parse_day_file(bomb, "k.csv.gz", DAY)
    two_members = day_file(line()) + gzip.compress((line("B") + "\n").encode())
    assert parse_day_file(two_members, "k", DAY).symbols.tolist() == ["A", "B"]
    with pytest.raises(InputError, match=r"^k: not a valid gzip file \(it ends before the end of its compressed"):
        parse_day_file(day_file(line())[:-5], "k", DAY)


def test_unknown_columns_are_named_escaped_cut_and_counted() -> None:
    """Their names went into the note as the file wrote them: an escape sequence reached the
    terminal, and ten thousand columns made one note of them all."""
    names = ["vwap", "\x1b[2Jred", "x" * 40, *(f"c{i}" for i in range(10_000))]
    raw = (HEADER + "," + ",".join(names) + "\n" + line() + "," * len(names) + "\n").encode()
    parsed = parse_day_file(gzip.compress(raw, mtime=0), "k", DAY)
    assert parsed.symbols.tolist() == ["A"]
    shown = ", ".join(["vwap", "'\\x1b[2jred'", f"'{'x' * 30}'...", *(f"c{i}" for i in range(7))])
    assert parsed.notes == [f"k: column(s) {shown} and 9993 more not known; ignored"]
