"""The gamma flip: the spot level at which total dealer gamma changes sign.

Every contract's Black-Scholes gamma is re-priced at each level of a grid around spot, keeping its
own implied volatility and time to expiry (a sticky-strike view), as one (levels x contracts)
matrix.  The coarse grid runs in float32, which halves memory traffic and lets numpy use its SIMD
``exp``; it only has to locate sign changes.  The coarse cell holding the crossing nearest to
spot is then re-evaluated in float64 on a finer grid and the root is interpolated linearly there,
so the answer carries float64 accuracy at a fraction of the cost.  Contracts whose gamma is
negligible over the whole range are dropped first (short-dated far-from-spot strikes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# exp(-0.5 * 9.6**2) ~ 1e-20: beyond this |d1| a contract's gamma is numerically nothing.
_D1_CUT = 9.6

NO_IV_CONTRACTS = "no_contracts_with_iv"
NO_CROSSING = "no_crossing_in_range"


@dataclass(frozen=True, slots=True)
class GammaBook:
    """The per-contract constants of dealer gamma as a function of the spot level ``s``.

    ``G(s) = 0.01 * s * sum_i u_i * phi(b_i * ln(s / spot) + c_i)`` equals
    ``sum_i w_i * gamma_i(s) * s**2 * 0.01``: dollars per 1 % move at level ``s``.
    """

    spot: float
    u: FloatArray  # w_i * exp(-q T) / (sigma sqrt(T)) / sqrt(2 pi)
    b: FloatArray  # 1 / (sigma sqrt(T))
    c: FloatArray  # d1 at the current spot

    @classmethod
    def build(cls, spot: float, strike: FloatArray, years: FloatArray, sigma: FloatArray,
              weight: FloatArray, r: float, q: float = 0.0) -> GammaBook:
        """``weight`` is the signed position size: dealer sign * open interest * multiplier."""
        vol_t = sigma * np.sqrt(years)
        b = 1.0 / vol_t
        c = (np.log(spot / strike) + (r - q + 0.5 * sigma * sigma) * years) * b
        u = weight * np.exp(-q * years) * b * _INV_SQRT_2PI
        return cls(spot=float(spot), u=u, b=b, c=c)

    def prune(self, low: float, high: float) -> GammaBook:
        """Drop contracts whose gamma is below 1e-20 of its peak at every level in [low, high]."""
        d_low = self.b * math.log(low / self.spot) + self.c
        d_high = self.b * math.log(high / self.spot) + self.c
        # d1 rises with the level, so the contract matters unless both ends lie beyond the cut.
        keep = (d_low < _D1_CUT) & (d_high > -_D1_CUT) & (self.u != 0.0)
        if keep.all():
            return self
        return GammaBook(self.spot, self.u[keep], self.b[keep], self.c[keep])

    def total(self, levels: npt.ArrayLike, dtype: type[np.floating] = np.float64) -> FloatArray:
        """Dealer gamma exposure (USD per 1 % move) at each spot level."""
        levels = np.asarray(levels, dtype=np.float64)
        x = np.log(levels / self.spot).astype(dtype)
        d = np.multiply.outer(x, self.b.astype(dtype))
        d += self.c.astype(dtype)
        np.square(d, out=d)
        d *= dtype(-0.5)
        np.exp(d, out=d)  # underflow to 0 far from the strike is the right answer
        return 0.01 * levels * (d @ self.u.astype(dtype)).astype(np.float64)


@dataclass(frozen=True, slots=True)
class FlipResult:
    level: float | None
    reason: str | None
    crossings: int  # sign changes seen on the coarse grid


def _crossings(values: FloatArray) -> npt.NDArray[np.intp]:
    """Indices j where the sign changes between levels j and j+1 (a zero counts on its left)."""
    s = np.sign(values)
    return np.flatnonzero((s[:-1] * s[1:] < 0) | ((s[:-1] == 0) & (s[1:] != 0)))


def _nearest(levels: FloatArray, cells: npt.NDArray[np.intp], spot: float) -> int:
    mid = 0.5 * (levels[cells] + levels[cells + 1])
    return int(cells[np.argmin(np.abs(mid - spot))])


def _interpolate(levels: FloatArray, values: FloatArray, j: int) -> float:
    lo, hi = values[j], values[j + 1]
    if lo == 0.0:
        return float(levels[j])
    return float(levels[j] + (levels[j + 1] - levels[j]) * lo / (lo - hi))


def _refine(book: GammaBook, levels: FloatArray, j: int, refine_points: int) -> float | None:
    """Root inside coarse cell j from a float64 sub-grid; None if float64 sees no sign change."""
    fine_levels = np.linspace(levels[j], levels[j + 1], refine_points + 1)
    fine = book.total(fine_levels)
    cells = _crossings(fine)
    if cells.size == 0:
        return None
    return _interpolate(fine_levels, fine, _nearest(fine_levels, cells, book.spot))


def find_gamma_flip(book: GammaBook, *, flip_range: float, grid_points: int,
                    refine_points: int) -> FlipResult:
    """Locate the zero of total dealer gamma nearest to spot within ``spot * (1 +/- flip_range)``."""
    levels = book.spot * (1.0 + np.linspace(-flip_range, flip_range, grid_points))
    book = book.prune(levels[0], levels[-1])
    if book.u.size == 0:
        return FlipResult(None, NO_IV_CONTRACTS, 0)
    coarse = book.total(levels, np.float32)
    cells = _crossings(coarse)
    if cells.size:
        level = _refine(book, levels, _nearest(levels, cells, book.spot), refine_points)
        if level is not None:
            return FlipResult(level, None, int(cells.size))
    # float32 rounding can fake or hide a sign change only where |G| is at rounding level; the
    # rare disagreement is settled by the float64 grid.
    coarse = book.total(levels)
    cells = _crossings(coarse)
    if cells.size == 0:
        return FlipResult(None, NO_CROSSING, 0)
    j = _nearest(levels, cells, book.spot)
    level = _refine(book, levels, j, refine_points)
    return FlipResult(level if level is not None else _interpolate(levels, coarse, j), None,
                      int(cells.size))
