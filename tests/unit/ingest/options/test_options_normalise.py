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
    b, a = contract(ticker_="O:B"), contract(ticker_="O:A")
    for results in ([a, b], [b, a]):
        chain = normalise_chain(copy.deepcopy(results), SNAPSHOT, TID)
        assert [r[COL["contract_symbol"]] for r in chain.rows] == ["O:A"]
    # Two non-standard contracts: still deterministic (smallest symbol).
    x, y = contract(shares_per_contract=150, ticker_="O:Y"), contract(shares_per_contract=None, ticker_="O:X")
    assert [r[COL["contract_symbol"]] for r in normalise_chain([x, y], SNAPSHOT, TID).rows] == ["O:X"]


def test_strikes_equal_after_quantisation_collide() -> None:
    chain = normalise_chain(
        [contract(strike_price=10.00001, ticker_="O:B"), contract(strike_price=10.0, ticker_="O:A")],
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
    ({"last_quote": {"bid": -1.5, "ask": 4.2}}, "last_quote.bid -1.5 is out of range (0..inf)"),
    ({"underlying_asset": {"price": -3}}, "underlying_asset.price -3 is out of range (0..inf)"),
    ({"implied_volatility": -0.2}, "implied_volatility -0.2 is out of range (0..inf)"),
])
def test_a_number_out_of_range_drops_that_contract_and_keeps_the_chain(over: dict, said: str) -> None:
    """One open_interest of 1e300 used to lose the whole chain (OverflowError in the COPY encoder)."""
    from kapman.db.bulk import encode_binary_rows
    from kapman.ingest.options.normalise import TYPES
    good = contract(ticker_="O:AAPL260116P00150100", contract_type="put")
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
    chain = normalise_chain([contract(ticker_="O:AA\x00PL"), contract(ticker_="O:B", contract_type="put")],
                            SNAPSHOT, TID)
    assert chain.dropped == {"malformed": 1} and "NUL" in chain.samples[0] and len(chain.rows) == 1
