"""A3 on a chain with adjusted contracts (GE after its 1-for-8 reverse split), through the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from kapman.clock import close_of
from kapman.ids import ticker_id
from kapman.jobs import a3_dealer_metrics as a3

pytestmark = pytest.mark.integration
D = date(2025, 12, 19)
SPOT = 104.0
STRIKES = [90.0, 95.0, 100.0, 105.0, 110.0, 115.0, 120.0]
EXPIRIES = [D + timedelta(days=14), D + timedelta(days=42)]
GE = ticker_id("GE")


def _standard() -> list[tuple]:
    """(expiration, strike, type, symbol, shares, oi, gamma, delta) of the standard contracts."""
    rows = []
    for e, expiry in enumerate(EXPIRIES):
        for k, strike in enumerate(STRIKES):
            for kind in "CP":
                gamma = 0.05 * (1 - abs(strike - SPOT) / 40) / (1 + e)
                delta = 0.5 - (strike - SPOT) / 50 if kind == "C" else -0.5 - (strike - SPOT) / 50
                oi = 1000 + 300 * k + (2500 if (kind, strike) in (("C", 110.0), ("P", 95.0)) else 0)
                symbol = f"O:GE{expiry:%y%m%d}{kind}{int(strike * 1000):08d}"
                rows.append((expiry, strike, kind, symbol, 100, oi, gamma, delta))
    return rows


#: The adjusted pair: strike 13, 12 shares each (what 100 shares became), large open interest.
ADJUSTED = [(EXPIRIES[0], 13.0, "C", "O:GE1260102C00013000", 12, 50_000, 0.0004, 0.99),
            (EXPIRIES[0], 13.0, "P", "O:GE1260102P00013000", 12, 30_000, 0.0001, -0.01)]


@pytest.fixture
def ge_db(fresh_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("INSERT INTO tickers (id, symbol) VALUES (%s, 'GE')", (GE,))
        conn.execute("INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
                     "VALUES ('core', 'GE', 'test', %s)", (D,))
        conn.execute("INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume) "
                     "VALUES (%s, %s, 103, 105, 102, %s, 1e6)", (GE, D, SPOT))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type, "
                "contract_symbol, shares_per_contract, underlying_price, open_interest, implied_volatility, "
                "gamma, delta) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0.3, %s, %s)",
                [(close_of(D), GE, e, Decimal(str(k)), t, s, n, SPOT, oi, g, dl)
                 for e, k, t, s, n, oi, g, dl in _standard() + ADJUSTED])
        yield conn


def test_adjusted_contracts_are_kept_out_of_every_metric(ge_db: psycopg.Connection) -> None:
    conn = ge_db
    result = a3.compute(conn, a3.A3Params(dates=[D], symbols=["GE"]))
    payload = conn.execute("SELECT dealer_metrics_json FROM daily_snapshots WHERE ticker_id = %s AND time = %s",
                           (GE, close_of(D))).fetchone()[0]
    assert payload["status"] == "FULL"
    assert payload["counts"]["excluded"]["adjusted_deliverable"] == 2
    assert payload["counts"]["eligible"] == len(_standard())
    # From scratch, the standard contracts only: sign * gamma * OI * 100 * spot^2 * 1%.
    gex = [(1 if t == "C" else -1) * g * oi * 100 * SPOT * SPOT * 0.01 for _, _, t, _, _, oi, g, _ in _standard()]
    assert payload["gex_gross"] == pytest.approx(sum(abs(x) for x in gex), abs=0.01)
    assert payload["gex_net"] == pytest.approx(sum(gex), abs=0.01)
    dex = sum((1 if t == "C" else -1) * dl * oi * 100 * SPOT for _, _, t, _, _, oi, _, dl in _standard())
    assert payload["dex_net"] == pytest.approx(dex, abs=0.01)
    walls = [w["strike"] for w in payload["call_walls"] + payload["put_walls"]]
    assert 13.0 not in walls and set(walls) <= set(STRIKES)
    assert payload["call_wall"] == 110.0 and payload["put_wall"] == 95.0
    assert payload["max_pain"] in STRIKES and payload["max_pain"] != 13.0
    assert 13.0 not in payload["strike_profile"]["strikes"]
    total_oi = {t: sum(oi for _, _, tt, _, _, oi, _, _ in _standard() if tt == t) for t in "CP"}
    assert payload["put_call_oi_ratio"] == pytest.approx(total_oi["P"] / total_oi["C"], abs=1e-4)
    assert result.details.adjusted_contracts == {"GE": 2}
    assert any("2 adjusted contracts (deliverable != 100) kept out of every metric" in n for n in result.notes)
