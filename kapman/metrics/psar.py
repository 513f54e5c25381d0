"""Parabolic SAR (``trend.psar.*``), TA-Lib's SAR algorithm run on all tickers at once."""

from __future__ import annotations

import numpy as np

from kapman.metrics._rolling import empty_like

PSAR_STEP, PSAR_MAX = 0.02, 0.2


def psar(
    high: np.ndarray, low: np.ndarray, step: float = PSAR_STEP, max_step: float = PSAR_MAX
) -> tuple[np.ndarray, np.ndarray]:
    """Return (sar, is_long) where is_long is 1.0 for an up trend, 0.0 for a down trend, NaN if undefined.

    As TA-Lib: the first value is at row 1. The initial direction is short when bar 1 shows a
    positive -DM against bar 0 (low fell more than high rose), long otherwise; the initial SAR is the
    extreme of bar 0 (its low when long) and the initial extreme point is bar 1's high (long) or low.
    A bar with a NaN high/low yields NaN and stops the system; it restarts, as at row 1, on the second
    clean bar after it.
    """
    t_len, n = high.shape
    sar_out, long_out = empty_like(high), empty_like(high)
    if t_len < 2:
        return sar_out, long_out
    ok = ~(np.isnan(high) | np.isnan(low))
    active = np.zeros(n, dtype=bool)
    is_long = np.zeros(n, dtype=bool)
    sar = np.full(n, np.nan)
    ep = np.full(n, np.nan)
    af = np.full(n, step)
    for t in range(1, t_len):
        nh, nl = high[t], low[t]
        start = ok[t] & ok[t - 1] & ~active
        if start.any():
            ph0, pl0 = high[t - 1], low[t - 1]
            diff_m, diff_p = pl0 - nl, nh - ph0
            short0 = (diff_m > 0) & (diff_p < diff_m)
            is_long = np.where(start, ~short0, is_long)
            sar = np.where(start, np.where(short0, ph0, pl0), sar)
            ep = np.where(start, np.where(short0, nl, nh), ep)
            af = np.where(start, step, af)
        # TA-Lib compares the first bar against itself ("cheat" on the previous high/low)
        ph = np.where(start, nh, high[t - 1])
        pl = np.where(start, nl, low[t - 1])
        active = (active & ok[t]) | start

        # long and not penetrated / short and not penetrated / reversals
        rev_to_short = is_long & (nl <= sar)
        rev_to_long = ~is_long & (nh >= sar)
        reverse = rev_to_short | rev_to_long
        # reversal: SAR jumps to the extreme point, clamped to today's and yesterday's range
        rsar = np.where(rev_to_short, np.maximum(np.maximum(ep, ph), nh), np.minimum(np.minimum(ep, pl), nl))
        # continuation: new extreme raises the acceleration factor
        new_ext = np.where(is_long, nh > ep, nl < ep) & ~reverse
        ep_c = np.where(new_ext, np.where(is_long, nh, nl), ep)
        af_c = np.where(new_ext, np.minimum(af + step, max_step), af)

        out_sar = np.where(reverse, rsar, sar)
        is_long = np.where(reverse, ~is_long, is_long)
        ep = np.where(reverse, np.where(rev_to_short, nl, nh), ep_c)
        af = np.where(reverse, step, af_c)
        nxt = out_sar + af * (ep - out_sar)
        # the next SAR may not enter the range of today's or yesterday's bar
        nxt = np.where(is_long, np.minimum(np.minimum(nxt, pl), nl), np.maximum(np.maximum(nxt, ph), nh))
        sar = np.where(active, nxt, np.nan)
        sar_out[t] = np.where(active, out_sar, np.nan)
        long_out[t] = np.where(active, is_long.astype(np.float64), np.nan)
    return sar_out, long_out


def compute(high: np.ndarray, low: np.ndarray) -> dict[str, np.ndarray]:
    sar, is_long = psar(high, low)
    prev_long = np.full_like(is_long, np.nan)
    prev_long[1:] = is_long[:-1]
    with np.errstate(invalid="ignore"):
        up = np.where(is_long == 1.0, sar, np.nan)
        down = np.where(is_long == 0.0, sar, np.nan)
        # 1.0 on the bar a reversal happens, 0.0 otherwise (also on the first bar: nothing reversed)
        up_ind = ((is_long == 1.0) & (prev_long == 0.0)).astype(np.float64)
        down_ind = ((is_long == 0.0) & (prev_long == 1.0)).astype(np.float64)
    up_ind[np.isnan(is_long)] = np.nan
    down_ind[np.isnan(is_long)] = np.nan
    return {
        "trend.psar.psar": sar,
        "trend.psar.psar_up": up,
        "trend.psar.psar_down": down,
        "trend.psar.psar_up_indicator": up_ind,
        "trend.psar.psar_down_indicator": down_ind,
    }
