"""Trend indicators: the ``trend.*`` keys of the A2 surface (PSAR lives in psar.py)."""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r
from kapman.metrics._panel import Panel

ADX_N = 14
AROON_N = 25
CCI_N, CCI_C = 20, 0.015
DPO_N = 20
EMA_N = 14
ICHI_CONV, ICHI_BASE, ICHI_SPAN_B = 9, 26, 52
KST_ROC, KST_SMA, KST_SIG = (10, 15, 20, 30), (10, 10, 10, 15), 9
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
MASS_EMA, MASS_SUM = 9, 25
SMA_WINDOWS = (14, 20, 50, 200)
STC_FAST, STC_SLOW, STC_CYCLE, STC_SMOOTH1, STC_SMOOTH2 = 23, 50, 10, 3, 3
TRIX_N = 15
VORTEX_N = 14
WMA_N = 9


def wilder_sum(x: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib's running Wilder sum for DM/TR: seeded with the sum of the first n-1 values, then
    S = S - S/n + x; the seed row itself is not reported (PLUS_DI/MINUS_DI start at row n)."""
    return r.recurse_reseeded(x * n, r.window_seeds(x, n - 1, total=True), 1.0 / n, first_row_nan=True)


def adx(p: Panel, n: int = ADX_N) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    up = r.diff(p.high)
    down = -r.diff(p.low)
    plus_dm = r.where0((up > down) & (up > 0), up)
    minus_dm = r.where0((down > up) & (down > 0), down)
    r.mark_nan(plus_dm, up, down)
    r.mark_nan(minus_dm, up, down)
    tr_s = wilder_sum(p.true_range, n)
    pdi = 100.0 * r.safe_div(wilder_sum(plus_dm, n), tr_s)
    mdi = 100.0 * r.safe_div(wilder_sum(minus_dm, n), tr_s)
    dx = 100.0 * r.safe_div(np.abs(pdi - mdi), pdi + mdi)
    return r.wilder(dx, n), pdi, mdi


def _roc_fraction(c: np.ndarray, n: int) -> np.ndarray:
    return r.safe_div(r.diff(c, n), r.shift(c, n))


def _stoch_of(x: np.ndarray, n: int) -> np.ndarray:
    hi, lo = r.rolling_max(x, n), r.rolling_min(x, n)
    return 100.0 * r.safe_div(x - lo, hi - lo)


def compute(p: Panel) -> dict[str, np.ndarray]:
    h, lo, c = p.high, p.low, p.close
    out: dict[str, np.ndarray] = {}

    a, pdi, mdi = adx(p)
    out["trend.adx.adx"], out["trend.adx.adx_pos"], out["trend.adx.adx_neg"] = a, pdi, mdi

    # Aroon over the AROON_N + 1 bars ending at t (TA-Lib); the latest bar wins ties.
    up = 100.0 * (AROON_N - r.bars_since_extreme(h, AROON_N + 1, "max")) / AROON_N
    down = 100.0 * (AROON_N - r.bars_since_extreme(lo, AROON_N + 1, "min")) / AROON_N
    out["trend.aroon.aroon_up"], out["trend.aroon.aroon_down"] = up, down
    out["trend.aroon.aroon_indicator"] = up - down

    tp = p.typical
    tp_sma = r.rolling_mean(tp, CCI_N)
    # mean absolute deviation from the window's current SMA (TA-Lib CCI), NaN before the SMA exists
    mean_dev = np.full_like(tp, np.nan)
    if tp.shape[0] >= CCI_N:
        t_len, w0 = tp.shape[0], CCI_N - 1
        sma, acc = tp_sma[w0:], mean_dev[w0:]
        acc[:] = 0.0
        dev = np.empty_like(acc)
        for k in range(CCI_N):
            np.subtract(tp[w0 - k : t_len - k], sma, out=dev)
            np.abs(dev, out=dev)
            acc += dev
        acc /= CCI_N
    out["trend.cci.cci"] = r.safe_div(tp - tp_sma, CCI_C * mean_dev)

    out["trend.dpo.dpo"] = r.shift(c, DPO_N // 2 + 1) - p.close_windows.mean(DPO_N)
    out["trend.ema.ema_indicator"] = p.ema_close(EMA_N)

    conv = (p.high_max.window(ICHI_CONV) + p.low_min.window(ICHI_CONV)) / 2.0
    base = (p.high_max.window(ICHI_BASE) + p.low_min.window(ICHI_BASE)) / 2.0
    out["trend.ichimoku.ichimoku_conversion_line"] = conv
    out["trend.ichimoku.ichimoku_base_line"] = base
    out["trend.ichimoku.ichimoku_a"] = (conv + base) / 2.0
    out["trend.ichimoku.ichimoku_b"] = (p.high_max.window(ICHI_SPAN_B) + p.low_min.window(ICHI_SPAN_B)) / 2.0

    kst: np.ndarray = sum(  # type: ignore[assignment]  # a sum of arrays is an array
        (i + 1) * r.rolling_mean(_roc_fraction(c, rn), sn)
        for i, (rn, sn) in enumerate(zip(KST_ROC, KST_SMA, strict=True))
    )
    kst = 100.0 * kst
    kst_sig = r.rolling_mean(kst, KST_SIG)
    out["trend.kst.kst"], out["trend.kst.kst_sig"], out["trend.kst.kst_diff"] = kst, kst_sig, kst - kst_sig

    macd = p.ema_close(MACD_FAST) - p.ema_close(MACD_SLOW)
    macd_sig = r.ema(macd, MACD_SIGNAL)
    out["trend.macd.macd"], out["trend.macd.macd_signal"] = macd, macd_sig
    out["trend.macd.macd_diff"] = macd - macd_sig

    e1 = r.ema(h - lo, MASS_EMA)
    e2 = r.ema(e1, MASS_EMA)
    out["trend.mass_index.mass_index"] = r.rolling_sum(r.safe_div(e1, e2), MASS_SUM)

    for n in SMA_WINDOWS:
        out[f"trend.sma.sma_{n}"] = p.close_windows.mean(n)

    stc_macd = p.ema_close(STC_FAST) - p.ema_close(STC_SLOW)
    stoch_d = r.ema(_stoch_of(stc_macd, STC_CYCLE), STC_SMOOTH1)
    out["trend.stc.stc"] = r.ema(_stoch_of(stoch_d, STC_CYCLE), STC_SMOOTH2)

    e3 = r.ema(r.ema(p.ema_close(TRIX_N), TRIX_N), TRIX_N)
    out["trend.trix.trix"] = 100.0 * _roc_fraction(e3, 1)

    vm_pos = np.abs(h - r.shift(lo))
    vm_neg = np.abs(lo - r.shift(h))
    tr_sum = p.true_range_windows.sum(VORTEX_N)
    vip = r.safe_div(r.rolling_sum(vm_pos, VORTEX_N), tr_sum)
    vin = r.safe_div(r.rolling_sum(vm_neg, VORTEX_N), tr_sum)
    out["trend.vortex.vortex_indicator_pos"], out["trend.vortex.vortex_indicator_neg"] = vip, vin
    out["trend.vortex.vortex_indicator_diff"] = vip - vin

    out["trend.wma.wma"] = r.weighted_ma(c, WMA_N)
    return out
