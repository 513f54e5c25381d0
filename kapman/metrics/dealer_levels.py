"""Strike-level aggregates of a chain: GEX profile, call/put walls, max pain, ATM implied vol.

All functions take plain arrays of the contracts they should consider and aggregate per strike
with ``np.unique`` + ``np.bincount``; none loops over contracts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Strikes come from a decimal column; rounding merges float noise such as 152.50000000000003.
_STRIKE_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class StrikeTotals:
    strikes: FloatArray  # ascending, distinct
    totals: tuple[FloatArray, ...]  # one sum per strike for each input column


def by_strike(strike: FloatArray, *columns: FloatArray) -> StrikeTotals:
    keys, inverse = np.unique(np.round(strike, _STRIKE_DECIMALS), return_inverse=True)
    sums = tuple(np.bincount(inverse, weights=col, minlength=keys.size).astype(np.float64)
                 for col in columns)
    return StrikeTotals(keys, sums)


@dataclass(frozen=True, slots=True)
class Wall:
    strike: float
    gex: float
    open_interest: float
    distance_pct: float  # (strike - spot) / spot * 100


def walls(strike: FloatArray, gex: FloatArray, open_interest: FloatArray, spot: float,
          count: int) -> list[Wall]:
    """The ``count`` strikes with the largest |GEX| summed per strike, largest first.

    Ties go to the strike nearer to spot, then the lower strike, so the result is deterministic.
    """
    if strike.size == 0:
        return []
    agg = by_strike(strike, gex, open_interest)
    total, oi = agg.totals
    size = np.abs(total)
    order = np.lexsort((agg.strikes, np.abs(agg.strikes - spot), -size))
    order = order[size[order] > 0.0][:count]
    return [Wall(float(agg.strikes[i]), float(total[i]), float(oi[i]),
                 float((agg.strikes[i] - spot) / spot * 100.0)) for i in order]


@dataclass(frozen=True, slots=True)
class MaxPain:
    expiration: np.datetime64
    strike: float
    payout: float  # USD paid to holders at expiry if the underlying settles at ``strike``


def max_pain(expiration: npt.NDArray[np.datetime64], strike: FloatArray, is_call: BoolArray,
             open_interest: FloatArray, multiplier: FloatArray) -> MaxPain | None:
    """Max pain of the nearest expiration that has open interest.

    Payout at settlement S is sum over calls OI*max(0, S-K)*mult + puts OI*max(0, K-S)*mult,
    evaluated at each strike listed for that expiration; the lowest strike wins a tie.
    """
    held = open_interest > 0.0
    if not held.any():
        return None
    nearest = expiration[held].min()
    listed = expiration == nearest
    candidates = np.unique(np.round(strike[listed], _STRIKE_DECIMALS))
    pos = listed & held
    k, size, call = strike[pos], open_interest[pos] * multiplier[pos], is_call[pos]
    # (candidates x contracts): a few hundred strikes by a few hundred contracts at most.
    diff = candidates[:, None] - k[None, :]
    intrinsic = np.where(call[None, :], np.maximum(diff, 0.0), np.maximum(-diff, 0.0))
    payout = intrinsic @ size
    best = int(np.argmin(payout))
    return MaxPain(nearest, float(candidates[best]), float(payout[best]))


def _side_iv(strike: FloatArray, iv: FloatArray, spot: float) -> float | None:
    if strike.size == 0:
        return None
    agg = by_strike(strike, iv, np.ones_like(iv))
    mean_iv = agg.totals[0] / agg.totals[1]
    if not agg.strikes[0] <= spot <= agg.strikes[-1]:
        return None  # no extrapolation beyond the listed strikes
    return float(np.interp(spot, agg.strikes, mean_iv))


def atm_iv(dte: npt.NDArray[np.int64], expiration: npt.NDArray[np.datetime64], strike: FloatArray,
           is_call: BoolArray, iv: FloatArray, spot: float,
           min_dte: int) -> tuple[float | None, np.datetime64 | None]:
    """IV at spot, interpolated linearly across strikes, averaging the call and put sides.

    Uses the first expiration at or beyond ``min_dte`` days whose calls or puts bracket spot;
    ``iv`` must already be restricted to usable (positive, finite) values.
    """
    far = dte >= min_dte
    for exp_date in np.unique(expiration[far]):  # a few dozen expirations at most
        on = far & (expiration == exp_date)
        sides = [_side_iv(strike[on & side], iv[on & side], spot) for side in (is_call, ~is_call)]
        found = [v for v in sides if v is not None]
        if found:
            return float(np.mean(found)), exp_date
    return None, None
