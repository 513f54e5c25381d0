"""Vectorised Black-Scholes(-Merton) prices and greeks.

Every function broadcasts its array arguments with numpy and returns float64 arrays (0-d for
scalar input).  Conventions, matching the options snapshot provider:

* ``T`` is in years of 365 days (see :func:`year_fraction`), ``sigma``, ``r`` and ``q`` are
  decimal fractions per year (0.25 = 25 %), continuously compounded.
* ``bs_vega`` is per 1 vol point (a change of 0.01 in ``sigma``); ``bs_theta`` is per calendar day
  (the annual rate divided by 365).
* Inputs outside the model's domain (``T <= 0``, ``sigma <= 0``, ``S <= 0``, ``K <= 0`` or any
  NaN) give NaN rather than a limit value, so a caller cannot mistake "no model" for zero.

The normal CDF is W. J. Cody's rational Chebyshev approximation of erfc (relative error below
1e-15 over the whole real line), written with numpy so no compiled extension is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from kapman.clock import MARKET_CLOSE, NEW_YORK

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

SECONDS_PER_YEAR = 365.0 * 86400.0
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Cody (1969), "Rational Chebyshev approximations for the error function", as in netlib CALERF.
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
# erfc(x) underflows to zero in float64 beyond this argument.
_ERFC_XBIG = 26.543


def _exp_neg_sq(y: FloatArray) -> FloatArray:
    """exp(-y*y) without the cancellation error of squaring a large y (Cody's split)."""
    ysq = np.trunc(y * 16.0) / 16.0
    return np.exp(-ysq * ysq) * np.exp(-(y - ysq) * (y + ysq))


def erfc(x: ArrayLike) -> FloatArray:
    """Complementary error function, vectorised (NaN in, NaN out)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.abs(x)
    out = np.full(x.shape, np.nan)

    small = y <= 0.46875
    if small.any():
        ys = y[small]
        ysq = ys * ys
        num = _A[4] * ysq
        den = ysq
        for i in range(3):
            num = (num + _A[i]) * ysq
            den = (den + _B[i]) * ysq
        out[small] = 1.0 - x[small] * (num + _A[3]) / (den + _B[3])

    mid = (y > 0.46875) & (y <= 4.0)
    if mid.any():
        ym = y[mid]
        num = _C[8] * ym
        den = ym
        for i in range(7):
            num = (num + _C[i]) * ym
            den = (den + _D[i]) * ym
        out[mid] = _exp_neg_sq(ym) * (num + _C[7]) / (den + _D[7])

    big = y > 4.0
    if big.any():
        yb = y[big]
        res = np.zeros(yb.shape)
        live = yb < _ERFC_XBIG
        yl = yb[live]
        ysq = 1.0 / (yl * yl)
        num = _P[5] * ysq
        den = ysq
        for i in range(4):
            num = (num + _P[i]) * ysq
            den = (den + _Q[i]) * ysq
        tail = ysq * (num + _P[4]) / (den + _Q[4])
        res[live] = _exp_neg_sq(yl) * (_INV_SQRT_PI - tail) / yl
        out[big] = res

    # erfc(-y) = 2 - erfc(y); the small branch already used the signed x.
    flip = (x < 0.0) & ~small
    out[flip] = 2.0 - out[flip]
    return out


def norm_cdf(x: ArrayLike) -> FloatArray:
    """Standard normal CDF, accurate to ~1e-16 relative in both tails."""
    return 0.5 * erfc(-np.asarray(x, dtype=np.float64) / _SQRT2)


def norm_pdf(x: ArrayLike) -> FloatArray:
    """Standard normal density."""
    x = np.asarray(x, dtype=np.float64)
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


class _Terms:
    """The shared pieces of every formula, NaN where the model does not apply."""

    __slots__ = ("S", "K", "T", "sigma", "r", "q", "call", "d1", "d2", "sqrt_t", "disc_q", "disc_r")

    def __init__(self, S: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
                 q: ArrayLike, is_call: ArrayLike) -> None:
        S, K, T, sigma, r, q, call = np.broadcast_arrays(
            np.asarray(S, dtype=np.float64), np.asarray(K, dtype=np.float64),
            np.asarray(T, dtype=np.float64), np.asarray(sigma, dtype=np.float64),
            np.asarray(r, dtype=np.float64), np.asarray(q, dtype=np.float64),
            np.asarray(is_call, dtype=bool))
        ok = (T > 0.0) & (sigma > 0.0) & (S > 0.0) & (K > 0.0)
        # Out-of-domain cells become NaN up front so no warning is raised and NaN propagates.
        self.T = np.where(ok, T, np.nan)
        self.S, self.K, self.sigma, self.r, self.q, self.call = S, K, sigma, r, q, call
        with np.errstate(divide="ignore", invalid="ignore"):
            self.sqrt_t = np.sqrt(self.T)
            vol_t = sigma * self.sqrt_t
            self.d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * self.T) / vol_t
        self.d2 = self.d1 - vol_t
        self.disc_q = np.exp(-q * self.T)
        self.disc_r = np.exp(-r * self.T)


def bs_price(S: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
             q: ArrayLike = 0.0, is_call: ArrayLike = True) -> FloatArray:
    """Black-Scholes-Merton option value."""
    t = _Terms(S, K, T, sigma, r, q, is_call)
    call = t.S * t.disc_q * norm_cdf(t.d1) - t.K * t.disc_r * norm_cdf(t.d2)
    put = t.K * t.disc_r * norm_cdf(-t.d2) - t.S * t.disc_q * norm_cdf(-t.d1)
    return np.where(t.call, call, put)


def bs_delta(S: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
             q: ArrayLike = 0.0, is_call: ArrayLike = True) -> FloatArray:
    """dV/dS; puts are negative."""
    t = _Terms(S, K, T, sigma, r, q, is_call)
    return np.where(t.call, t.disc_q * norm_cdf(t.d1), -t.disc_q * norm_cdf(-t.d1))


def bs_gamma(S: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
             q: ArrayLike = 0.0, is_call: ArrayLike = True) -> FloatArray:
    """d2V/dS2, the same for calls and puts (``is_call`` is accepted for a uniform signature)."""
    t = _Terms(S, K, T, sigma, r, q, is_call)
    return t.disc_q * norm_pdf(t.d1) / (t.S * t.sigma * t.sqrt_t)


def bs_vega(S: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
            q: ArrayLike = 0.0, is_call: ArrayLike = True) -> FloatArray:
    """Value change for a 1 vol point (0.01) rise in sigma; the same for calls and puts."""
    t = _Terms(S, K, T, sigma, r, q, is_call)
    return t.S * t.disc_q * norm_pdf(t.d1) * t.sqrt_t / 100.0


def bs_theta(S: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
             q: ArrayLike = 0.0, is_call: ArrayLike = True) -> FloatArray:
    """Value change per calendar day of passing time (annual theta / 365); usually negative."""
    t = _Terms(S, K, T, sigma, r, q, is_call)
    decay = -t.S * t.disc_q * norm_pdf(t.d1) * t.sigma / (2.0 * t.sqrt_t)
    call = decay - t.r * t.K * t.disc_r * norm_cdf(t.d2) + t.q * t.S * t.disc_q * norm_cdf(t.d1)
    put = decay + t.r * t.K * t.disc_r * norm_cdf(-t.d2) - t.q * t.S * t.disc_q * norm_cdf(-t.d1)
    return np.where(t.call, call, put) / 365.0


def _as_utc(instant: datetime) -> datetime:
    # Naive timestamps are UTC, as everywhere else in KapMan (see kapman.clock.parse_instant).
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def year_fraction(snapshot_time: datetime, expiration: ArrayLike | Iterable[date]) -> FloatArray:
    """Years of 365 days from ``snapshot_time`` to 16:00 America/New_York on each expiration date.

    ``expiration`` may hold ``datetime.date`` objects, ISO strings or ``datetime64`` values; NaT
    gives NaN.  The result is negative once the expiration's close has passed.  Early (13:00)
    closes are ignored: the error is at most three hours.  Only the distinct dates go through the
    time-zone database, so a chain of thousands of contracts costs a few dozen conversions.
    """
    days = np.asarray(expiration, dtype="datetime64[D]")
    unique, inverse = np.unique(days, return_inverse=True)
    start = _as_utc(snapshot_time).timestamp()
    closes = np.array([np.nan if np.isnat(day) else _close_epoch(int(day.astype(np.int64)))
                       for day in unique], dtype=np.float64)
    return ((closes - start) / SECONDS_PER_YEAR)[inverse].reshape(days.shape)


@lru_cache(maxsize=4096)
def _close_epoch(day_number: int) -> float:
    """Unix time of 16:00 New York on the date ``day_number`` days after 1970-01-01."""
    day = date(1970, 1, 1) + timedelta(days=day_number)
    return datetime.combine(day, MARKET_CLOSE, tzinfo=NEW_YORK).timestamp()
