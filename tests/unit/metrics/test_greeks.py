"""Black-Scholes kernels against vollib, an independent implementation (Jaeckel's rational CDF)."""

from __future__ import annotations

import itertools
import math
import warnings
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from kapman.metrics.greeks import (
    bs_delta,
    bs_gamma,
    bs_price,
    bs_theta,
    bs_vega,
    erfc,
    norm_cdf,
    norm_pdf,
    year_fraction,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # vollib's own imports, not ours
    from vollib.black_scholes import black_scholes
    from vollib.black_scholes.greeks import analytical as bs_greeks
    from vollib.black_scholes_merton import black_scholes_merton
    from vollib.black_scholes_merton.greeks import analytical as bsm_greeks

STRIKES = (60.0, 80.0, 95.0, 100.0, 105.0, 120.0, 150.0)
EXPIRIES = (1 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 2.0)
VOLS = (0.05, 0.2, 0.5, 1.0)
RATES = (0.0, 0.02, 0.05)
SPOT = 100.0


def _close(ours: np.ndarray, ref: np.ndarray, tol: float = 1e-8) -> None:
    """Absolute below 1, relative above: tiny wing values are compared absolutely."""
    err = np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))
    worst = int(np.argmax(err))
    assert err[worst] <= tol, f"case {worst}: ours={ours[worst]!r} ref={ref[worst]!r}"


@pytest.fixture(scope="module")
def grid() -> dict[str, np.ndarray]:
    rows = list(itertools.product(STRIKES, EXPIRIES, VOLS, RATES, (True, False)))
    cols = np.array(rows, dtype=object).T
    return {
        "K": cols[0].astype(float),
        "T": cols[1].astype(float),
        "sigma": cols[2].astype(float),
        "r": cols[3].astype(float),
        "call": cols[4].astype(bool),
    }


@pytest.mark.parametrize(
    ("ours", "ref"),
    [
        (bs_price, lambda f, K, T, r, s: black_scholes(f, SPOT, K, T, r, s)),
        (bs_delta, lambda f, K, T, r, s: bs_greeks.delta(f, SPOT, K, T, r, s)),
        (bs_gamma, lambda f, K, T, r, s: bs_greeks.gamma(f, SPOT, K, T, r, s)),
        (bs_vega, lambda f, K, T, r, s: bs_greeks.vega(f, SPOT, K, T, r, s)),
        (bs_theta, lambda f, K, T, r, s: bs_greeks.theta(f, SPOT, K, T, r, s)),
    ],
    ids=["price", "delta", "gamma", "vega", "theta"],
)
def test_matches_vollib_over_grid(grid, ours, ref) -> None:
    got = ours(SPOT, grid["K"], grid["T"], grid["sigma"], grid["r"], 0.0, grid["call"])
    want = np.array(
        [
            ref("c" if c else "p", K, T, r, s)
            for K, T, s, r, c in zip(
                grid["K"], grid["T"], grid["sigma"], grid["r"], grid["call"], strict=True
            )
        ]
    )
    assert got.shape == want.shape == (len(STRIKES) * len(EXPIRIES) * len(VOLS) * len(RATES) * 2,)
    _close(got, want)


@pytest.mark.parametrize(
    ("ours", "ref"),
    [
        (bs_price, black_scholes_merton),
        (bs_delta, bsm_greeks.delta),
        (bs_gamma, bsm_greeks.gamma),
        (bs_vega, bsm_greeks.vega),
        (bs_theta, bsm_greeks.theta),
    ],
    ids=["price", "delta", "gamma", "vega", "theta"],
)
def test_dividend_yield_matches_vollib_merton(grid, ours, ref) -> None:
    q = 0.03
    got = ours(SPOT, grid["K"], grid["T"], grid["sigma"], grid["r"], q, grid["call"])
    want = np.array(
        [
            ref("c" if c else "p", SPOT, K, T, r, s, q)
            for K, T, s, r, c in zip(
                grid["K"], grid["T"], grid["sigma"], grid["r"], grid["call"], strict=True
            )
        ]
    )
    _close(got, want)


def test_put_call_parity_and_units() -> None:
    K, T, s, r = 105.0, 0.5, 0.3, 0.04
    call = bs_price(SPOT, K, T, s, r, is_call=True)
    put = bs_price(SPOT, K, T, s, r, is_call=False)
    assert call - put == pytest.approx(SPOT - K * math.exp(-r * T), abs=1e-12)
    # Vega per vol point: a 0.01 change in sigma moves the price by about vega.
    bumped = bs_price(SPOT, K, T, s + 1e-4, r) - bs_price(SPOT, K, T, s - 1e-4, r)
    assert bumped / 0.02 == pytest.approx(float(bs_vega(SPOT, K, T, s, r)), rel=1e-6)
    # Theta per calendar day: the price change when one day of time passes.
    day = 1 / 365
    decay = bs_price(SPOT, K, T - day / 2, s, r) - bs_price(SPOT, K, T + day / 2, s, r)
    assert decay == pytest.approx(float(bs_theta(SPOT, K, T, s, r)), rel=1e-5)
    assert float(bs_gamma(SPOT, K, T, s, r, is_call=True)) == float(bs_gamma(SPOT, K, T, s, r, is_call=False))


@pytest.mark.parametrize("fn", [bs_price, bs_delta, bs_gamma, bs_vega, bs_theta])
def test_out_of_domain_gives_nan_without_warnings(fn) -> None:
    S = np.array([100.0, 100.0, 100.0, 100.0, 0.0, 100.0, np.nan, 100.0])
    K = np.array([100.0, 100.0, 100.0, -5.0, 100.0, np.nan, 100.0, 100.0])
    T = np.array([0.0, -0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    sigma = np.array([0.2, 0.2, 0.0, 0.2, 0.2, 0.2, 0.2, 0.2])
    out = fn(S, K, T, sigma, 0.03, 0.0, True)
    assert np.isnan(out[:7]).all()
    assert np.isfinite(out[7])


def test_broadcasting_shapes() -> None:
    spots = np.linspace(80, 120, 5)[:, None]
    strikes = np.array([90.0, 100.0, 110.0])
    out = bs_gamma(spots, strikes, 0.25, 0.2, 0.01)
    assert out.shape == (5, 3)
    assert bs_delta(100.0, 100.0, 0.25, 0.2, 0.01).shape == ()
    calls = bs_delta(100.0, strikes, 0.25, 0.2, 0.01, 0.0, np.array([True, False, True]))
    assert calls[0] > 0 > calls[1] and calls[2] > 0


def test_erfc_and_norm_cdf_match_math_to_machine_precision() -> None:
    x = np.concatenate([np.linspace(-26, 26, 200_001), [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    want = np.array([math.erfc(v) for v in x])
    got = erfc(x)
    assert np.max(np.abs(got - want) / want) < 2e-15
    z = np.linspace(-37.0, 37.0, 20_001)
    want_cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in z])
    nonzero = want_cdf > 0
    # 1e-13: the division by sqrt(2) alone perturbs the deep left tail at that level.
    assert np.max(np.abs(norm_cdf(z)[nonzero] - want_cdf[nonzero]) / want_cdf[nonzero]) < 1e-13
    assert norm_cdf(0.0) == 0.5
    np.testing.assert_array_equal(norm_cdf(np.array([-np.inf, np.inf])), [0.0, 1.0])
    assert np.isnan(norm_cdf(np.nan))
    assert float(norm_pdf(1.3)) == pytest.approx(math.exp(-0.5 * 1.69) / math.sqrt(2 * math.pi), rel=1e-15)


def test_year_fraction_to_new_york_close() -> None:
    snap = datetime(2025, 6, 13, 19, 45, tzinfo=UTC)  # 15:45 EDT
    exps = [date(2025, 6, 13), date(2025, 12, 19), None, date(2025, 6, 12)]
    got = year_fraction(snap, np.array(exps, dtype="datetime64[D]"))
    minute = 1 / (365 * 24 * 60)
    assert got[0] == pytest.approx(15 * minute, rel=1e-12)
    # 2025-12-19 16:00 EST is 21:00 UTC; from 2025-06-13 19:45 UTC that is 189 days 1h15m.
    assert got[1] == pytest.approx((189 * 24 * 60 + 75) * minute, rel=1e-12)
    assert np.isnan(got[2])
    assert got[3] == pytest.approx((15 - 24 * 60) * minute, rel=1e-12)
    # Naive timestamps are UTC; other zones convert; strings and date objects are accepted.
    assert year_fraction(snap.replace(tzinfo=None), ["2025-06-13"])[0] == pytest.approx(got[0])
    east = snap.astimezone(timezone(timedelta(hours=-4)))
    assert year_fraction(east, [date(2025, 6, 13)])[0] == pytest.approx(got[0])
