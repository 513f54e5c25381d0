"""Volume indicators: the ``volume.*`` keys of the A2 surface.

Cumulative indicators (A/D line, OBV, NVI, VPT) accumulate from row 0 of the window the caller
passes, so their level depends on where that window starts: the caller must use a fixed window.
A bar whose increment cannot be computed (NaN input) contributes nothing and is reported as NaN.
"""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r
from kapman.metrics._panel import Panel

CMF_N = 20
EOM_N, EOM_SCALE = 14, 1e8  # `ta` scales ease of movement by 1e8 to get readable magnitudes
FI_N = 13
MFI_N = 14
#: Typical prices closer than this (relative to their size) are a tie: no money flow.  Equal
#: H+L+C of different bars can differ in the last bit once summed in floating point; TA-Lib
#: counts such a pair as unchanged with the same dead zone.
MFI_TIE = 1e-14
NVI_START = 1000.0
VWAP_N = 14


def cumulate(increment: np.ndarray) -> np.ndarray:
    """Running sum from row 0; NaN increments add 0 and are reported as NaN."""
    bad = np.isnan(increment)
    out = r.cumsum0(np.where(bad, 0.0, increment))[1:]
    out[bad] = np.nan
    return out


def _defined_from_row0(first_row: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """Increment series whose row 0 is 0 (the starting level) where first_row is defined."""
    inc = increment.copy()
    inc[0] = np.where(np.isnan(first_row), np.nan, 0.0)
    return inc


def compute(p: Panel) -> dict[str, np.ndarray]:
    h, lo, c, v = p.high, p.low, p.close, p.volume
    out: dict[str, np.ndarray] = {}

    mfv = p.clv * v
    out["volume.adi.acc_dist_index"] = cumulate(mfv)
    out["volume.cmf.chaikin_money_flow"] = r.safe_div(r.rolling_sum(mfv, CMF_N), p.volume_windows.sum(CMF_N))

    emv = EOM_SCALE * r.safe_div((r.diff(h) + r.diff(lo)) * (h - lo), 2.0 * v)
    out["volume.eom.ease_of_movement"] = emv
    out["volume.eom.sma_ease_of_movement"] = r.rolling_mean(emv, EOM_N)

    out["volume.fi.force_index"] = r.ema(p.close_diff * v, FI_N)

    flow = p.typical * v
    # Direction from the sums H+L+C, not from a difference of the rounded /3 values.
    hlc = h + lo + c
    dhlc = r.diff(hlc)
    moved = np.abs(dhlc) > MFI_TIE * (np.abs(hlc) + np.abs(r.shift(hlc)))
    pos = r.where0(moved & (dhlc > 0), flow)
    neg = r.where0(moved & (dhlc < 0), flow)
    r.mark_nan(pos, dhlc, flow)
    r.mark_nan(neg, dhlc, flow)
    ps, ns = r.rolling_sum(pos, MFI_N), r.rolling_sum(neg, MFI_N)
    out["volume.mfi.money_flow_index"] = 100.0 * r.safe_div(ps, ps + ns)

    ret = r.safe_div(p.close_diff, p.prev_close)
    dv = r.diff(v)
    factor = 1.0 + r.where0(dv < 0, ret)
    r.mark_nan(factor, ret, dv)
    factor[0] = np.where(np.isnan(c[0]) | np.isnan(v[0]), np.nan, NVI_START)
    bad = np.isnan(factor)
    nvi = np.where(bad, 1.0, factor)
    for t in range(1, nvi.shape[0]):  # running product down the rows (see _rolling.cumsum0)
        nvi[t] *= nvi[t - 1]
    nvi[bad] = np.nan
    out["volume.nvi.negative_volume_index"] = nvi

    d = p.close_diff
    signed = np.sign(d) * v
    r.mark_nan(signed, d)
    out["volume.obv.on_balance_volume"] = cumulate(_defined_from_row0(c[0] + v[0], signed))

    out["volume.vpt.volume_price_trend"] = cumulate(_defined_from_row0(c[0] + v[0], v * ret))

    out["volume.vwap.volume_weighted_average_price"] = r.safe_div(
        r.rolling_sum(flow, VWAP_N), p.volume_windows.sum(VWAP_N)
    )
    return out
