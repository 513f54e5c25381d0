"""Gamma flip, walls, max pain and ATM IV on constructed chains with known answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from kapman.metrics.dealer import DealerParams, compute_dealer_metrics
from kapman.metrics.dealer_chain import ChainArrays
from kapman.metrics.dealer_flip import NO_CROSSING, NO_IV_CONTRACTS, GammaBook, find_gamma_flip
from kapman.metrics.dealer_levels import max_pain
from kapman.metrics.greeks import bs_gamma, year_fraction

AS_OF = date(2025, 6, 13)
SNAPSHOT = datetime(2025, 6, 13, 19, 45, tzinfo=UTC)
PARAMS = DealerParams()


def arrays(rows: list[tuple[str, float, int, float, float, float]]) -> ChainArrays:
    """Rows of (type, strike, dte, open_interest, iv, gamma); NaN for a missing number."""
    kind, strike, dte, oi, iv, gamma = (np.array(col) for col in zip(*rows, strict=True))
    n = len(rows)
    return ChainArrays(
        expiration=np.datetime64(AS_OF, "D") + dte.astype("timedelta64[D]"),
        strike=strike.astype(float),
        is_call=kind == "C",
        is_put=kind == "P",
        open_interest=oi.astype(float),
        volume=np.zeros(n),
        implied_volatility=iv.astype(float),
        delta=np.full(n, np.nan),
        gamma=gamma.astype(float),
        multiplier=np.full(n, 100.0),
    )


def metrics(chain: ChainArrays, spot: float = 100.0, **params: Any) -> dict[str, Any]:
    return compute_dealer_metrics(
        chain,
        spot=spot,
        spot_source="snapshot",
        as_of=AS_OF,
        snapshot_time=SNAPSHOT,
        params=DealerParams(**params),
    )


def years_of(chain: ChainArrays) -> np.ndarray:
    return np.maximum(year_fraction(SNAPSHOT, chain.expiration), 1 / 8760)  # the 1-hour floor


def total_gamma(chain: ChainArrays, level: float, years: np.ndarray) -> float:
    """Dealer gamma at one spot level, straight from bs_gamma: the definition the flip must zero."""
    sign = np.where(chain.is_call, 1.0, -1.0)
    gamma = bs_gamma(level, chain.strike, years, chain.implied_volatility, PARAMS.risk_free_rate)
    return float(np.sum(sign * gamma * chain.open_interest * chain.multiplier) * level**2 * 0.01)


def brute_force_roots(chain: ChainArrays, lo: float, hi: float) -> list[float]:
    """Every sign change on a 0.01 scan, each polished by 60 bisection steps."""
    years = years_of(chain)
    levels = np.arange(lo, hi + 1e-9, 0.01)
    values = [total_gamma(chain, s, years) for s in levels]
    roots = []
    for j in range(len(levels) - 1):
        if values[j] * values[j + 1] < 0:
            a, b, fa = levels[j], levels[j + 1], values[j]
            for _ in range(60):
                m = 0.5 * (a + b)
                fm = total_gamma(chain, m, years)
                a, b, fa = (m, b, fm) if fa * fm > 0 else (a, m, fa)
            roots.append(0.5 * (a + b))
    return roots


# Heavy 92 puts below spot, calls at 100 and 106 above: one crossing between 92 and 100.
ONE_CROSSING = arrays(
    [
        ("P", 92.0, 30, 1500, 0.30, np.nan),
        ("C", 106.0, 30, 1000, 0.25, np.nan),
        ("C", 100.0, 9, 200, 0.28, np.nan),
        ("P", 97.0, 58, 300, 0.27, np.nan),
    ]
)


def test_gamma_flip_matches_brute_force_root() -> None:
    (root,) = brute_force_roots(ONE_CROSSING, 80.0, 120.0)
    out = metrics(ONE_CROSSING)
    assert out["gamma_flip_reason"] is None and out["gamma_flip_crossings"] == 1
    assert out["gamma_flip"] == pytest.approx(root, abs=1e-4)  # 4-decimal rounding
    assert out["gamma_flip_distance_pct"] == round((out["gamma_flip"] - 100.0), 3)


def test_gamma_flip_picks_crossing_nearest_spot() -> None:
    chain = arrays(
        [
            ("P", 90.0, 20, 2000, 0.25, np.nan),
            ("C", 100.0, 20, 1500, 0.25, np.nan),
            ("P", 112.0, 20, 3000, 0.25, np.nan),
        ]
    )
    roots = brute_force_roots(chain, 80.0, 124.0)
    assert len(roots) == 2
    for spot in (96.0, 108.0):
        out = metrics(chain, spot=spot)
        nearest = min((r for r in roots if abs(r - spot) <= 0.2 * spot), key=lambda r: abs(r - spot))
        assert out["gamma_flip"] == pytest.approx(nearest, abs=1e-4)


def test_no_crossing_in_range_is_null_with_reason() -> None:
    calls_only = arrays([("C", 95.0, 20, 100, 0.3, np.nan), ("C", 105.0, 40, 100, 0.3, np.nan)])
    out = metrics(calls_only)
    assert out["gamma_flip"] is None and out["gamma_flip_reason"] == NO_CROSSING
    assert out["gamma_flip_distance_pct"] is None and out["gamma_flip_crossings"] == 0


def test_flip_needs_contracts_with_iv() -> None:
    provider_only = arrays([("C", 95.0, 20, 100, np.nan, 0.02), ("P", 105.0, 20, 100, np.nan, 0.02)])
    out = metrics(provider_only)
    assert out["gamma_flip"] is None and out["gamma_flip_reason"] == NO_IV_CONTRACTS
    assert out["counts"]["flip_excluded_no_iv"] == 2
    assert out["gex_net"] == 0.0  # the GEX itself still uses the provider gamma


def test_gamma_book_equals_summed_bs_gamma() -> None:
    c = ONE_CROSSING
    years = years_of(c)
    weight = np.where(c.is_call, 1.0, -1.0) * c.open_interest * c.multiplier
    book = GammaBook.build(100.0, c.strike, years, c.implied_volatility, weight, PARAMS.risk_free_rate)
    levels = np.array([85.0, 93.3, 100.0, 117.0])
    want = [total_gamma(c, s, years) for s in levels]
    np.testing.assert_allclose(book.total(levels), want, rtol=1e-12)
    np.testing.assert_allclose(book.total(levels, np.float32), want, rtol=1e-4)
    empty = GammaBook.build(100.0, *(np.empty(0),) * 4, 0.04)
    assert find_gamma_flip(empty, flip_range=0.2, grid_points=201, refine_points=10).reason == NO_IV_CONTRACTS


# --- walls ------------------------------------------------------------------------------------


def test_walls_aggregate_per_strike_and_rank_by_gex() -> None:
    # With spot 100, GEX = sign * gamma * OI * 100 * 100^2 * 0.01 = sign * gamma * OI * 10,000.
    chain = arrays(
        [
            ("C", 105.0, 10, 100, np.nan, 0.02),  # +20,000
            ("C", 105.0, 40, 50, np.nan, 0.02),  # +10,000 -> strike 105: +30,000, OI 150
            ("C", 100.0, 10, 100, np.nan, 0.025),  # +25,000
            ("C", 110.0, 10, 200, np.nan, 0.012),  # +24,000: most OI, not most GEX
            ("C", 120.0, 10, 10, np.nan, 0.005),  # +500
            ("P", 95.0, 10, 300, np.nan, 0.02),  # -60,000
            ("P", 90.0, 10, 500, np.nan, 0.01),  # -50,000
            ("P", 85.0, 10, 100, np.nan, 0.005),  # -5,000
        ]
    )
    out = metrics(chain)
    assert out["call_wall"] == 105.0 and out["put_wall"] == 95.0
    assert out["call_walls"] == [
        {"strike": 105.0, "gex": 30_000.0, "open_interest": 150.0, "distance_pct": 5.0},
        {"strike": 100.0, "gex": 25_000.0, "open_interest": 100.0, "distance_pct": 0.0},
        {"strike": 110.0, "gex": 24_000.0, "open_interest": 200.0, "distance_pct": 10.0},
    ]
    assert out["put_walls"] == [
        {"strike": 95.0, "gex": -60_000.0, "open_interest": 300.0, "distance_pct": -5.0},
        {"strike": 90.0, "gex": -50_000.0, "open_interest": 500.0, "distance_pct": -10.0},
        {"strike": 85.0, "gex": -5_000.0, "open_interest": 100.0, "distance_pct": -15.0},
    ]
    # The profile keeps strikes within +/-20 % of spot and nets calls against puts per strike.
    far = metrics(chain, spot=100.0, profile_range=0.1)["strike_profile"]
    assert far["strikes"] == [90.0, 95.0, 100.0, 105.0, 110.0]
    assert far["gex"] == [-50_000.0, -60_000.0, 25_000.0, 30_000.0, 24_000.0]


# --- max pain ---------------------------------------------------------------------------------


def test_max_pain_textbook_example() -> None:
    # Nearest expiration with OI (7 days), multiplier 100. Payout to holders if it settles at:
    #   90: calls 0;                              puts 100: 30*10 + 110: 5*20  = 400
    #  100: calls 90: 10*10 = 100;                puts 110: 5*10               = 150  <- minimum
    #  110: calls 90: 10*20 + 100: 30*10 = 500;   puts 0                       = 500
    chain = arrays(
        [
            ("C", 90.0, 7, 10, 0.3, np.nan),
            ("C", 100.0, 7, 30, 0.3, np.nan),
            ("C", 110.0, 7, 50, 0.3, np.nan),
            ("P", 90.0, 7, 40, 0.3, np.nan),
            ("P", 100.0, 7, 30, 0.3, np.nan),
            ("P", 110.0, 7, 5, 0.3, np.nan),
            ("C", 200.0, 3, 0, 0.3, np.nan),  # a nearer expiration with no open interest: skipped
            ("C", 80.0, -1, 9999, 0.3, np.nan),  # expired: ignored
            ("P", 130.0, 30, 9999, 0.3, np.nan),  # a later expiration: ignored
        ]
    )
    out = metrics(chain)
    assert out["max_pain"] == 100.0
    assert out["max_pain_expiration"] == (AS_OF + timedelta(days=7)).isoformat()
    pain = max_pain(
        chain.expiration[:6],
        chain.strike[:6],
        chain.is_call[:6],
        chain.open_interest[:6],
        chain.multiplier[:6],
    )
    assert pain is not None and pain.payout == 150 * 100


def test_max_pain_tie_goes_to_lowest_strike_and_none_without_oi() -> None:
    exp = np.full(2, np.datetime64(AS_OF, "D") + 7)
    # Settling at 90 or 100 costs nothing: both are minima.
    pain = max_pain(
        exp, np.array([90.0, 100.0]), np.array([False, True]), np.array([0.0, 1.0]), np.full(2, 100.0)
    )
    assert pain is not None and pain.strike == 90.0
    no_oi = max_pain(exp, np.array([90.0, 100.0]), np.array([True, True]), np.zeros(2), np.full(2, 100.0))
    assert no_oi is None


# --- ATM implied volatility -------------------------------------------------------------------


def test_atm_iv_interpolates_at_spot_on_first_expiry_past_a_week() -> None:
    chain = arrays(
        [
            ("C", 100.0, 3, 10, 0.90, np.nan),  # under 7 days: ignored
            ("C", 95.0, 10, 10, 0.30, np.nan),
            ("C", 105.0, 10, 10, 0.20, np.nan),  # calls: 0.25 at 100
            ("P", 95.0, 10, 10, 0.32, np.nan),
            ("P", 105.0, 10, 10, 0.22, np.nan),  # puts: 0.27 at 100
            ("C", 100.0, 40, 10, 0.50, np.nan),
        ]
    )
    out = metrics(chain)
    assert out["atm_iv"] == pytest.approx(0.26, abs=1e-12)
    assert out["atm_iv_expiration"] == (AS_OF + timedelta(days=10)).isoformat()
    # Spot 110 is outside the 10-day strikes and is not extrapolated; the 40-day expiry has only 100.
    assert metrics(chain, spot=110.0)["atm_iv"] is None
