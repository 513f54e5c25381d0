"""Volatility indicators: the ``volatility.*`` keys of the A2 surface."""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r
from kapman.metrics._panel import Panel

ATR_N = 14
BB_N, BB_K = 20, 2.0
DONCHIAN_N = 20
KELTNER_N, KELTNER_ATR, KELTNER_K = 20, 10, 2.0
ULCER_N = 14


def atr(p: Panel, n: int) -> np.ndarray:
    """Wilder ATR seeded with the mean of the first n true ranges (rows 1..n; TA-Lib)."""
    return r.wilder(p.true_range, n)


def _flag(cond: np.ndarray, *defined: np.ndarray) -> np.ndarray:
    """1.0 / 0.0 for a comparison, NaN where any operand is NaN."""
    out = cond.astype(np.float64)
    return r.mark_nan(out, *defined)


def compute(p: Panel) -> dict[str, np.ndarray]:
    c = p.close
    out: dict[str, np.ndarray] = {}
    out["volatility.atr.average_true_range"] = atr(p, ATR_N)

    cw = p.close_windows
    mavg = cw.mean(BB_N)
    std = np.sqrt(cw.var(BB_N, ddof=0))  # population std, as TA-Lib BBANDS and `ta`; 0 on a flat window
    hband, lband = mavg + BB_K * std, mavg - BB_K * std
    out["volatility.bbands.bollinger_mavg"] = mavg
    out["volatility.bbands.bollinger_hband"] = hband
    out["volatility.bbands.bollinger_lband"] = lband
    out["volatility.bbands.bollinger_wband"] = 100.0 * r.safe_div(hband - lband, mavg)
    out["volatility.bbands.bollinger_pband"] = r.safe_div(c - lband, hband - lband)
    out["volatility.bbands.bollinger_hband_indicator"] = _flag(c > hband, c, hband)
    out["volatility.bbands.bollinger_lband_indicator"] = _flag(c < lband, c, lband)

    dh, dl = p.high_max.window(DONCHIAN_N), p.low_min.window(DONCHIAN_N)
    out["volatility.donchian.donchian_channel_hband"] = dh
    out["volatility.donchian.donchian_channel_lband"] = dl
    out["volatility.donchian.donchian_channel_mband"] = (dh + dl) / 2.0
    out["volatility.donchian.donchian_channel_pband"] = r.safe_div(c - dl, dh - dl)
    # width relative to the SMA of the close over the same window, as the `ta` library defines it
    out["volatility.donchian.donchian_channel_wband"] = 100.0 * r.safe_div(
        dh - dl, cw.mean(DONCHIAN_N)
    )

    # ATR variant: EMA(close, 20) +/- 2 x Wilder ATR(10) (`ta` original_version=False, TA-Lib seeding)
    km = p.ema_close(KELTNER_N)
    katr = atr(p, KELTNER_ATR)
    kh, kl = km + KELTNER_K * katr, km - KELTNER_K * katr
    out["volatility.keltner.keltner_channel_hband"] = kh
    out["volatility.keltner.keltner_channel_lband"] = kl
    out["volatility.keltner.keltner_channel_mband"] = km
    out["volatility.keltner.keltner_channel_pband"] = r.safe_div(c - kl, kh - kl)
    out["volatility.keltner.keltner_channel_wband"] = 100.0 * r.safe_div(kh - kl, km)
    out["volatility.keltner.keltner_channel_hband_indicator"] = _flag(c > kh, c, kh)
    out["volatility.keltner.keltner_channel_lband_indicator"] = _flag(c < kl, c, kl)

    # Ulcer index: RMS of the percent drawdown from the rolling 14-bar max close, over 14 bars.
    cmax = r.rolling_max(c, ULCER_N)
    dd = 100.0 * r.safe_div(c - cmax, cmax)
    out["volatility.ulcer_index.ulcer_index"] = np.sqrt(np.maximum(r.rolling_mean(dd * dd, ULCER_N), 0.0))
    return out
