"""The pure snapshot-result -> options_chains row normalisation."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from kapman.ingest.options.normalise import (
    COLUMNS,
    Malformed,
    contract_row,
    normalise_chain,
    strike_of,
    underlying_price,
)

SNAPSHOT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)  # Friday 16:00 New York
TID = uuid4()
COL = {name: i for i, name in enumerate(COLUMNS)}


#: Keywords that set a ``details`` field (``ticker_`` is details.ticker); ``...`` removes a field.
DETAIL_KEYS = {"contract_type", "expiration_date", "shares_per_contract", "strike_price", "ticker_"}


def contract(**over: object) -> dict:
    base: dict = {
        "details": {
            "contract_type": "call",
            "exercise_style": "american",
            "expiration_date": "2026-01-16",
            "shares_per_contract": 100,
            "strike_price": 150.1,
            "ticker": "O:AAPL260116C00150100",
        },
        "greeks": {"delta": 0.52, "gamma": 0.03, "theta": -0.08, "vega": 0.21},
        "implied_volatility": 0.357,
        "open_interest": 1200,
        "day": {"volume": 85, "close": 4.1},
        "last_quote": {"bid": 4.0, "ask": 4.2, "midpoint": 4.1},
        "last_trade": {"price": 4.15, "size": 2},
        "underlying_asset": {"ticker": "AAPL", "price": 150.0},
    }
    for key, value in over.items():
        target, name = (base["details"], key.rstrip("_")) if key in DETAIL_KEYS else (base, key)
        if value is ...:
            target.pop(name, None)
        else:
            target[name] = value
    details = base["details"] or {}
    if "ticker_" not in over and details.get("contract_type") in ("call", "put") and isinstance(
            details.get("expiration_date"), str):  # the ticker follows the expiration and type
        yymmdd = details["expiration_date"][2:10].replace("-", "")
        details["ticker"] = f"O:AAPL{yymmdd}{details['contract_type'][0].upper()}00150100"
    return base


def row_of(result: dict) -> tuple:
    row = contract_row(result, SNAPSHOT, TID)
    assert isinstance(row, tuple)
    return row


def test_full_contract() -> None:
    row = row_of(contract())
    assert dict(zip(COLUMNS, row, strict=True)) == {
        "time": SNAPSHOT,
        "ticker_id": TID,
        "expiration_date": date(2026, 1, 16),
        "strike_price": Decimal("150.1000"),
        "option_type": "C",
        "contract_symbol": "O:AAPL260116C00150100",
        "shares_per_contract": 100,
        "underlying_price": 150.0,
        "bid": 4.0,
        "ask": 4.2,
        "last": 4.15,
        "volume": 85,
        "open_interest": 1200,
        "implied_volatility": 0.357,
        "delta": 0.52,
        "gamma": 0.03,
        "theta": -0.08,
        "vega": 0.21,
        "quote_updated_at": None,
        "trade_updated_at": None,
        "timeframe": None,
        "day_close": 4.1,
    }


def test_freshness_is_kept_and_the_day_close_survives_a_missing_trade() -> None:
    quote_ns, trade_ns = 1_734_634_799_123_456_789, 1_714_000_000_000_000_000   # 2024-12-19, 2024-04-24
    fresh = contract(last_quote={"bid": 4.0, "ask": 4.2, "last_updated": quote_ns, "timeframe": "DELAYED"},
                     last_trade={"price": 4.15, "sip_timestamp": trade_ns, "timeframe": "REAL-TIME"})
    for row in (row_of(fresh), normalise_chain([copy.deepcopy(fresh)], SNAPSHOT, TID).rows[0]):
        assert row[COL["quote_updated_at"]] == datetime(2024, 12, 19, 18, 59, 59, 123456, tzinfo=UTC)
        assert row[COL["trade_updated_at"]] == datetime(2024, 4, 24, 23, 6, 40, tzinfo=UTC)
        assert row[COL["timeframe"]] == "DELAYED"      # the quote's
    untraded = contract(last_trade={}, last_quote={"bid": 1.0, "timeframe": "REAL-TIME"}, day={"close": 3.9})
    for row in (row_of(untraded), normalise_chain([untraded], SNAPSHOT, TID).rows[0]):
        assert row[COL["last"]] is None and row[COL["day_close"]] == 3.9
        assert row[COL["trade_updated_at"]] is None and row[COL["timeframe"]] == "REAL-TIME"
    for odd in (contract(last_quote={"last_updated": "yesterday", "timeframe": "live"}, last_trade=None, day=None),
                contract(last_quote={"last_updated": -5, "timeframe": ["DELAYED"]}, last_trade={"sip_timestamp": 1.5},
                         day={"close": "4.1"})):
        for row in (row_of(odd), normalise_chain([copy.deepcopy(odd)], SNAPSHOT, TID).rows[0]):
            assert [row[COL[c]] for c in ("quote_updated_at", "trade_updated_at", "timeframe", "day_close")] == [
                None] * 4


@pytest.mark.parametrize("greeks", [None, {}, ...], ids=["null", "empty", "absent"])
def test_missing_greeks_stay_null(greeks: object) -> None:
    row = row_of(contract(greeks=greeks, implied_volatility=...))
    assert [row[COL[g]] for g in ("implied_volatility", "delta", "gamma", "theta", "vega")] == [None] * 5


def test_partial_greeks_and_zero_is_kept() -> None:
    row = row_of(contract(greeks={"delta": 0.0, "gamma": None, "vega": "n/a"}))
    assert (row[COL["delta"]], row[COL["gamma"]], row[COL["theta"]], row[COL["vega"]]) == (
        0.0,
        None,
        None,
        None,
    )


def test_missing_quote_trade_and_day_are_null() -> None:
    row = row_of(contract(last_quote=..., last_trade=None, day={}, open_interest=...))
    assert (
        row[COL["bid"]],
        row[COL["ask"]],
        row[COL["last"]],
        row[COL["volume"]],
        row[COL["open_interest"]],
    ) == (None,) * 5


def test_put_and_other() -> None:
    assert row_of(contract(contract_type="put"))[COL["option_type"]] == "P"
    assert contract_row(contract(contract_type="other"), SNAPSHOT, TID) == "other"


@pytest.mark.parametrize(
    "value, expected",
    [
        (150.1, "150.1000"),
        (0.5, "0.5000"),
        (12.345678, "12.3457"),
        ("7.25", "7.2500"),
        (100, "100.0000"),
        (2.00005, "2.0000"),  # half-even at the fifth decimal
    ],
)
def test_strike_quantised_to_four_places(value: object, expected: str) -> None:
    strike = strike_of(value)
    assert strike == Decimal(expected) and str(strike) == expected


@pytest.mark.parametrize("value", [None, "", "abc", -5, 0, 1e9, float("nan"), True])
def test_bad_strike_is_malformed(value: object) -> None:
    with pytest.raises(Malformed):
        strike_of(value)


def test_index_underlying_uses_value() -> None:
    assert underlying_price({"underlying_asset": {"ticker": "I:SPX", "value": 6812.5}}) == 6812.5
    assert underlying_price({"underlying_asset": {"price": 10.0, "value": 11.0}}) == 10.0
    assert underlying_price({"underlying_asset": None}) is None
    assert (
        row_of(contract(underlying_asset={"ticker": "I:SPX", "value": 6812.5}))[COL["underlying_price"]]
        == 6812.5
    )


def test_expired_dropped_and_expiring_today_kept() -> None:
    chain = normalise_chain(
        [contract(expiration_date="2025-12-18"), contract(expiration_date="2025-12-19")], SNAPSHOT, TID
    )
    assert chain.dropped["expired"] == 1 and len(chain.rows) == 1
    assert chain.rows[0][COL["expiration_date"]] == date(2025, 12, 19)


def test_expiry_uses_the_new_york_date() -> None:
    # 03:00 UTC on the 20th is still the 19th in New York: the 19th's contracts are live.
    late = datetime(2025, 12, 20, 3, 0, tzinfo=UTC)
    chain = normalise_chain([contract(expiration_date="2025-12-19")], late, TID)
    assert len(chain.rows) == 1 and not chain.dropped


def test_collision_prefers_standard_deliverable_then_smallest_symbol() -> None:
    standard = contract(ticker_="O:AAPL260116C00150100")
    adjusted = contract(shares_per_contract=150, ticker_="O:AAPL1260116C00150100", greeks={})
    for results in ([standard, adjusted], [adjusted, standard]):
        chain = normalise_chain(copy.deepcopy(results), SNAPSHOT, TID)
        assert chain.dropped == {"adjusted": 1} and len(chain.rows) == 1
        assert chain.rows[0][COL["shares_per_contract"]] == 100
        assert chain.rows[0][COL["contract_symbol"]] == "O:AAPL260116C00150100"
    b, a = contract(ticker_="O:AAPL2260116C00150100"), contract(ticker_="O:AAPL1260116C00150100")
    for results in ([a, b], [b, a]):
        chain = normalise_chain(copy.deepcopy(results), SNAPSHOT, TID)
        assert [r[COL["contract_symbol"]] for r in chain.rows] == ["O:AAPL1260116C00150100"]
    # Two non-standard contracts: still deterministic (smallest symbol).
    x = contract(shares_per_contract=150, ticker_="O:AAPL3260116C00150100")
    y = contract(shares_per_contract=None, ticker_="O:AAPL2260116C00150100")
    assert [r[COL["contract_symbol"]] for r in normalise_chain([x, y], SNAPSHOT, TID).rows] == [
        "O:AAPL2260116C00150100"]


def test_strikes_equal_after_quantisation_collide() -> None:
    chain = normalise_chain(
        [contract(strike_price=10.00001, ticker_="O:AAPL2260116C00010000"),
         contract(strike_price=10.0, ticker_="O:AAPL1260116C00010000")],
        SNAPSHOT,
        TID,
    )
    assert chain.dropped["collisions"] == 1 and len(chain.rows) == 1


def test_malformed_contracts_are_counted_not_fatal() -> None:
    bad = [
        contract(strike_price=None),
        contract(expiration_date=None),
        contract(expiration_date="12/19/2025"),
        contract(contract_type=None),
        contract(contract_type="straddle"),
        contract(ticker_=""),
        contract(details=None),
        "not an object",
        None,
    ]
    chain = normalise_chain([*bad, contract(), contract(contract_type="other")], SNAPSHOT, TID)
    assert chain.contracts == len(bad) + 2
    assert chain.dropped == {"malformed": len(bad), "other": 1}
    assert len(chain.rows) == 1 and len(chain.samples) == 3
    assert chain.samples[0] == "no strike_price"


@pytest.mark.parametrize(("over", "said"), [
    ({"open_interest": 1e300}, "O:AAPL260116C00150100: open_interest 1e+300 is out of range (0..2**63-1)"),
    ({"open_interest": 2**70}, "open_interest 1.18059e+21 is out of range (0..2**63-1)"),
    ({"open_interest": -5}, "open_interest -5 is out of range (0..2**63-1)"),
    ({"day": {"volume": 1e19}}, "day.volume 1e+19 is out of range (0..2**63-1)"),
    ({"shares_per_contract": 2**40}, "shares_per_contract 1099511627776 is out of range (1..2**31-1)"),
    ({"shares_per_contract": 0}, "shares_per_contract 0 is out of range (1..2**31-1)"),
    ({"last_quote": {"bid": -1.5, "ask": 4.2}}, "last_quote.bid -1.5 is out of range (0..1e+08)"),
    ({"underlying_asset": {"price": -3}}, "underlying_asset.price -3 is out of range (above 0..1e+08)"),
    ({"implied_volatility": -0.2}, "implied_volatility -0.2 is out of range (0..1000)"),
])
def test_a_number_out_of_range_drops_that_contract_and_keeps_the_chain(over: dict, said: str) -> None:
    """One open_interest of 1e300 used to lose the whole chain (OverflowError in the COPY encoder)."""
    from kapman.db.bulk import encode_binary_rows
    from kapman.ingest.options.normalise import TYPES
    good = contract(contract_type="put")
    chain = normalise_chain([contract(**over), good], SNAPSHOT, TID)
    assert chain.dropped == {"malformed": 1} and chain.samples and said in chain.samples[0]
    assert [r[COL["contract_symbol"]] for r in chain.rows] == ["O:AAPL260116P00150100"]
    assert encode_binary_rows(TYPES, chain.rows)  # the kept chain encodes


def test_edges_of_the_ranges_are_kept() -> None:
    chain = normalise_chain([contract(open_interest=2**63 - 1, day={"volume": 0}, last_quote={"bid": 0.0, "ask": 0.0})],
                            SNAPSHOT, TID)
    assert chain.dropped == {} and chain.rows[0][COL["open_interest"]] == 2**63 - 1


def test_a_contract_ticker_with_nul_is_dropped_not_the_chain() -> None:
    """PostgreSQL text cannot hold NUL: such a symbol used to fail the chain's COPY."""
    chain = normalise_chain([contract(ticker_="O:AA\x00PL"), contract(contract_type="put")],
                            SNAPSHOT, TID)
    assert chain.dropped == {"malformed": 1} and "NUL" in chain.samples[0] and len(chain.rows) == 1


def dropped_alone(bad: dict) -> str:
    """The one sample of ``bad`` dropped as malformed beside a good put, which is kept (both paths)."""
    with pytest.raises(Malformed) as info:
        contract_row(copy.deepcopy(bad), SNAPSHOT, TID)
    chain = normalise_chain([bad, contract(contract_type="put")], SNAPSHOT, TID)
    assert chain.dropped == {"malformed": 1} and chain.samples == [str(info.value)]
    assert [r[COL["contract_symbol"]] for r in chain.rows] == ["O:AAPL260116P00150100"]
    return chain.samples[0]


@pytest.mark.parametrize("where", ["last_quote.last_updated", "last_trade.sip_timestamp"])
@pytest.mark.parametrize("ns", [10**22, 2**70, 253402300800 * 10**9])  # the last: 10000-01-01
def test_a_time_beyond_datetime_is_null_not_an_overflow(where: str, ns: int) -> None:
    """Such a time used to raise OverflowError and fail the whole symbol."""
    outer, inner = where.split(".")
    ok = 1_734_634_799_123_456_789  # 2024-12-19 18:59:59.123456
    result = contract(last_quote={"bid": 4.0, "last_updated": ok}, last_trade={"price": 4.15, "sip_timestamp": ok})
    result[outer][inner] = ns
    for row in (row_of(copy.deepcopy(result)), normalise_chain([result], SNAPSHOT, TID).rows[0]):
        times = {"last_quote.last_updated": row[COL["quote_updated_at"]],
                 "last_trade.sip_timestamp": row[COL["trade_updated_at"]]}
        assert times.pop(where) is None
        assert list(times.values()) == [datetime(2024, 12, 19, 18, 59, 59, 123456, tzinfo=UTC)]
    last = contract(last_quote={"last_updated": 253402300799999999999})  # 9999-12-31 23:59:59.999999
    assert row_of(last)[COL["quote_updated_at"]] == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(("ticker", "said"), [
    ("hello world", "contract ticker 'hello world' is not an option ticker (O:, root, YYMMDD, C or P, 8-digit strike)"),
    ("O:ÄAPL260116C00150100", "contract ticker 'O:ÄAPL260116C00150100' is not an option ticker"),
    ("O:AAPL\ud800", "contract ticker 'O:AAPL\\ud800' is not an option ticker"),
    ("O:AAPL260116C0015010", "contract ticker 'O:AAPL260116C0015010' is not an option ticker"),
    ("O:AAPL260116C00150100X", "is not an option ticker"),
    ("O:aapl260116C00150100", "is not an option ticker"),
    ("O:AAPL260116C00١50100", "is not an option ticker"),
    ("AAPL260116C00150100", "is not an option ticker"),
    ("O:MSFT260116P00999000", "contract ticker 'O:MSFT260116P00999000' is not the contract's (2026-01-16, C)"),
    ("O:AAPL260117C00150100", "contract ticker 'O:AAPL260117C00150100' is not the contract's (2026-01-16, C)"),
    ("O:AAPL360116C00150100", "is not the contract's (2026-01-16, C)"),
])
def test_a_contract_ticker_not_of_the_contract_is_dropped(ticker: str, said: str) -> None:
    """Any text used to be stored as the contract's symbol, another contract's ticker too."""
    assert said in dropped_alone(contract(ticker_=ticker))


@pytest.mark.parametrize("ticker", ["O:SPXW260116C06800000", "O:SPX260116C06800000", "O:AAPL1260116C00150100",
                                    "O:BRKB260116C00150100", "O:A260116C00001500", " O:AAPL260116C00150100\n"])
def test_real_contract_tickers_are_kept(ticker: str) -> None:
    """Index roots, adjusted roots (``AAPL1``), one-letter roots; the strike is not compared (three
    decimals in the ticker, four in the column), so an adjusted strike still matches."""
    row = row_of(contract(ticker_=ticker))
    assert row[COL["contract_symbol"]] == ticker.strip() and row[COL["strike_price"]] == Decimal("150.1000")


@pytest.mark.parametrize(("expiration", "said"), [
    ("20260116", "expiration_date '20260116' is not a date (YYYY-MM-DD)"),
    (20260116, "expiration_date 20260116 is not a date (YYYY-MM-DD)"),
    ("2026-W03-5", "expiration_date '2026-W03-5' is not a date (YYYY-MM-DD)"),
    ("2026-01-16garbage", "expiration_date '2026-01-16garbage' is not a date (YYYY-MM-DD)"),
    ("2026-01-16T00:00:00", "expiration_date '2026-01-16T00:00:00' is not a date (YYYY-MM-DD)"),
    ("２０２６-01-16", "expiration_date '２０２６-01-16' is not a date (YYYY-MM-DD)"),
    ("2026-02-30", "expiration_date '2026-02-30' is not a date"),
])
def test_only_a_yyyy_mm_dd_string_is_an_expiration(expiration: object, said: str) -> None:
    """These used to become 2026-01-16 (the first ten characters of ``str(value)``)."""
    assert dropped_alone(contract(expiration_date=expiration, ticker_="O:AAPL260116C00150100")) == said


@pytest.mark.parametrize("strike", ["1_50", "١٥٠", "1e2", "NaN", "Infinity", "0x96", "150.1.0"])
def test_only_an_ascii_decimal_string_is_a_strike(strike: str) -> None:
    """"1_50" and Arabic-Indic digits used to become strike 150."""
    with pytest.raises(Malformed, match="is not a number"):
        strike_of(strike)
    assert dropped_alone(contract(strike_price=strike)) == f"strike_price {strike!r} is not a number"


def test_ascii_decimal_strike_strings_are_kept() -> None:
    assert [strike_of(s) for s in ("150", "150.1", " 7.25 ", ".5", "+2.5")] == [
        Decimal("150.0000"), Decimal("150.1000"), Decimal("7.2500"), Decimal("0.5000"), Decimal("2.5000")]


@pytest.mark.parametrize(("over", "said"), [
    ({"day": {"close": -3.0}}, "O:AAPL260116C00150100: day.close -3 is out of range (0..1e+08)"),
    ({"greeks": {"delta": 5.0}}, "O:AAPL260116C00150100: greeks.delta 5 is out of range (-1..1)"),
    ({"greeks": {"delta": 1e300}}, "O:AAPL260116C00150100: greeks.delta 1e+300 is out of range (-1..1)"),
    ({"greeks": {"delta": -1.5}}, "O:AAPL260116C00150100: greeks.delta -1.5 is out of range (-1..1)"),
    ({"implied_volatility": 1e300}, "O:AAPL260116C00150100: implied_volatility 1e+300 is out of range (0..1000)"),
    ({"last_quote": {"bid": 1e300}}, "O:AAPL260116C00150100: last_quote.bid 1e+300 is out of range (0..1e+08)"),
    ({"last_quote": {"ask": 1e9}}, "O:AAPL260116C00150100: last_quote.ask 1e+09 is out of range (0..1e+08)"),
    ({"last_trade": {"price": 1e300}}, "O:AAPL260116C00150100: last_trade.price 1e+300 is out of range (0..1e+08)"),
    ({"open_interest": 1.5}, "O:AAPL260116C00150100: open_interest 1.5 is not a whole number"),
    ({"open_interest": 2.5}, "O:AAPL260116C00150100: open_interest 2.5 is not a whole number"),
    ({"shares_per_contract": 100.4}, "O:AAPL260116C00150100: shares_per_contract 100.4 is not a whole number"),
    ({"day": {"volume": 85.5}}, "O:AAPL260116C00150100: day.volume 85.5 is not a whole number"),
])
def test_values_no_market_has_drop_that_contract(over: dict, said: str) -> None:
    """These used to be stored (a negative close, a delta of 5, an IV or bid of 1e300) or rounded
    (open interest 1.5 and 2.5 both became 2, 100.4 shares became 100)."""
    assert dropped_alone(contract(**over)) == said


@pytest.mark.parametrize("asset", [{"price": 0}, {"value": 0.0}, {"price": 0.0, "value": 0}])
def test_an_underlying_at_zero_is_no_quote_and_the_contract_is_kept(asset: dict) -> None:
    """A contract cannot be fetched again: an underlying price of 0 costs it that price, not its row."""
    result = contract(underlying_asset=asset)
    chain = normalise_chain([copy.deepcopy(result)], SNAPSHOT, TID)
    assert chain.dropped == {} and len(chain.rows) == 1
    assert chain.rows[0][COL["underlying_price"]] is None and row_of(result)[COL["underlying_price"]] is None


def test_a_delta_a_models_rounding_past_one_is_kept() -> None:
    chain = normalise_chain([contract(greeks={"delta": 1.0000000002}),
                             contract(contract_type="put", greeks={"delta": -1.0000000002})], SNAPSHOT, TID)
    assert chain.dropped == {} and [r[COL["delta"]] for r in chain.rows] == [1.0000000002, -1.0000000002]


def test_real_values_at_the_edges_are_kept() -> None:
    """A crossed quote (bid above ask) happens in real markets; IV above 4 too; whole floats are counts."""
    result = contract(last_quote={"bid": 4.3, "ask": 4.2}, implied_volatility=8.5, greeks={"delta": 1},
                      day={"close": 0.0, "volume": 85.0}, open_interest=2.0, shares_per_contract=100.0,
                      underlying_asset={"value": 1e-4})
    put = contract(contract_type="put", greeks={"delta": -1.0}, implied_volatility=1000, last_quote={"bid": 1e8})
    chain = normalise_chain([copy.deepcopy(result), put], SNAPSHOT, TID)
    assert chain.dropped == {} and len(chain.rows) == 2
    for row in (row_of(result), chain.rows[0]):
        assert [row[COL[c]] for c in ("bid", "ask", "implied_volatility", "delta", "day_close", "volume",
                                      "open_interest", "shares_per_contract", "underlying_price")] == [
            4.3, 4.2, 8.5, 1.0, 0.0, 85, 2, 100, 1e-4]
        assert [type(row[COL[c]]) for c in ("volume", "open_interest", "shares_per_contract")] == [int] * 3
    assert [chain.rows[1][COL[c]] for c in ("delta", "implied_volatility", "bid")] == [-1.0, 1000.0, 1e8]


def test_a_long_unusable_value_is_quoted_cut() -> None:
    """A drop sample is one line of the run's summary: a long text is cut, not quoted whole."""
    ticker = "O:" + "A" * 5000
    said = dropped_alone(contract(ticker_=ticker))
    assert said == (f"contract ticker '{ticker[:44]}... is not an option ticker "
                    "(O:, root, YYMMDD, C or P, 8-digit strike)")
    assert dropped_alone(contract(strike_price="9" * 400)) == f"strike_price '{'9' * 44}... is not a number"


def strikes(*contracts: dict) -> list[dict]:
    """The contracts at strikes 150.1, 160.1, ...: one row each, none a duplicate of another."""
    for i, c in enumerate(contracts):
        c["details"]["strike_price"] = 150.1 + 10 * i
        c["details"]["ticker"] = c["details"]["ticker"][:-8] + f"{150100 + 10000 * i:08d}"
    return list(contracts)


@pytest.mark.parametrize(("over", "field", "column", "example"), [
    ({"open_interest": "10"}, "open_interest", "open_interest", "'10'"),
    ({"day": {"volume": "85", "close": 4.1}}, "day.volume", "volume", "'85'"),
    ({"day": {"volume": 85, "close": "4.1"}}, "day.close", "day_close", "'4.1'"),
    ({"greeks": {"delta": "0.5", "gamma": 0.03}}, "greeks.delta", "delta", "'0.5'"),
    ({"greeks": {"delta": 0.5, "vega": "0.2"}}, "greeks.vega", "vega", "'0.2'"),
    ({"implied_volatility": "0.357"}, "implied_volatility", "implied_volatility", "'0.357'"),
    ({"underlying_asset": {"price": "101.2"}}, "underlying_asset.price", "underlying_price", "'101.2'"),
    ({"last_quote": {"bid": "4.0", "ask": 4.2}}, "last_quote.bid", "bid", "'4.0'"),
    ({"last_quote": {"bid": 4.0, "ask": "4.2"}}, "last_quote.ask", "ask", "'4.2'"),
    ({"last_trade": {"price": "4.15"}}, "last_trade.price", "last", "'4.15'"),
    ({"shares_per_contract": "100"}, "shares_per_contract", "shares_per_contract", "'100'"),
    ({"open_interest": True}, "open_interest", "open_interest", "True"),  # a bool is no count either
    ({"greeks": {"delta": [0.5]}}, "greeks.delta", "delta", "[0.5]"),
])
def test_a_number_sent_as_text_is_null_and_counted_per_field(
        over: dict, field: str, column: str, example: str) -> None:
    """Not read as a number (a guess), nor silently NULL: counted per field with the first value."""
    assert row_of(contract())[COL[column]] is not None
    chain = normalise_chain(strikes(contract(**over), contract(**over), contract()), SNAPSHOT, TID)
    assert len(chain.rows) == 3 and not chain.dropped
    assert [r[COL[column]] is None for r in chain.rows] == [True, True, False]
    assert chain.not_numbers == {field: 2} and chain.not_number_examples == {field: example}


def test_no_count_for_absent_null_or_nan_values_nor_for_dropped_contracts() -> None:
    absent = contract(open_interest=..., greeks=None, day={"volume": None}, implied_volatility=float("nan"))
    expired = contract(expiration_date="2025-12-18", open_interest="10")
    malformed = contract(open_interest="10", strike_price="x")
    chain = normalise_chain([absent, expired, malformed], SNAPSHOT, TID)
    assert len(chain.rows) == 1 and chain.dropped == {"expired": 1, "malformed": 1}
    assert chain.not_numbers == {} and chain.not_number_examples == {}


def test_a_text_value_on_the_slow_path_is_counted_once() -> None:
    """A strike given as text takes contract_row, which counts; nothing is counted twice."""
    text_strike, fractional, text = strikes(contract(), contract(open_interest=2.5), contract(open_interest="x"))
    text_strike["details"]["strike_price"], text_strike["open_interest"] = "150.1", "10"
    chain = normalise_chain([text_strike, fractional, text], SNAPSHOT, TID)
    assert chain.dropped == {"malformed": 1} and len(chain.rows) == 2  # 2.5 is no whole count
    assert chain.not_numbers == {"open_interest": 2} and chain.not_number_examples == {"open_interest": "'10'"}


def test_the_keys_of_contracts_holding_an_unread_value_are_noted_for_the_writer() -> None:
    """A replay keeps these contracts' stored rows; a collision's winner without one is not noted."""
    text, good = strikes(contract(open_interest="10"), contract())
    chain = normalise_chain([text, good], SNAPSHOT, TID)
    assert chain.unreadable == {(date(2026, 1, 16), Decimal("150.1000"), "C")}
    assert normalise_chain([contract()], SNAPSHOT, TID).unreadable == set()
    loser = contract(open_interest="10", ticker_="O:AAPL2260116C00150100")
    winner = contract(ticker_="O:AAPL1260116C00150100")
    for results in ([loser, winner], [winner, loser]):
        chain = normalise_chain(copy.deepcopy(results), SNAPSHOT, TID)
        assert chain.dropped == {"collisions": 1} and chain.unreadable == set()
        assert chain.rows[0][COL["open_interest"]] == 1200
