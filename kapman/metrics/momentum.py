"""Momentum indicators: the ``momentum.*`` keys of the A2 surface."""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r
from kapman.metrics._panel import Panel

RSI_N = 14
STOCH_N, STOCH_D = 14, 3
STOCHRSI_N, STOCHRSI_K, STOCHRSI_D = 14, 3, 3
ROC_N = 12
PPO_FAST, PPO_SLOW, PPO_SIGNAL = 12, 26, 9
TSI_SLOW, TSI_FAST = 25, 13
UO_WINDOWS, UO_WEIGHTS = (7, 14, 28), (4.0, 2.0, 1.0)
WILLR_N = 14
AO_FAST, AO_SLOW = 5, 34
KAMA_ER, KAMA_FAST, KAMA_SLOW = 10, 2, 30


def rsi(close: np.ndarray, n: int = RSI_N) -> np.ndarray:
    """Wilder RSI; average gain/loss seeded with the simple mean of the first n changes (TA-Lib)."""
    d = r.diff(close)
    gain = r.where0(d > 0, d)
    loss = r.where0(d < 0, -d)
    nan = np.isnan(d)
    gain[nan] = loss[nan] = np.nan
    ag, al = r.wilder(gain, n), r.wilder(loss, n)
    return 100.0 * r.safe_div(ag, ag + al)  # no movement at all in the smoothing: NaN


def _oscillator(x: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, ...]:
    """Percentage price oscillator of x: 100 (EMA fast - EMA slow) / EMA slow, its EMA signal, hist."""
    ef, es = r.ema(x, fast), r.ema(x, slow)
    line = 100.0 * r.safe_div(ef - es, es)
    sig = r.ema(line, signal)
    return line, sig, line - sig


def stochastic_k(p: Panel, n: int) -> np.ndarray:
    hh, ll = p.high_max.window(n), p.low_min.window(n)
    return 100.0 * r.safe_div(p.close - ll, hh - ll)


def kama(close: np.ndarray, n: int = KAMA_ER, fast: int = KAMA_FAST, slow: int = KAMA_SLOW) -> np.ndarray:
    """Kaufman adaptive MA (TA-Lib): first value at row n, from the previous close as the prior KAMA."""
    volatility = r.rolling_sum(np.abs(r.diff(close)), n)
    change = np.abs(r.diff(close, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        er = np.minimum(change / volatility, 1.0)
    er[volatility == 0] = 1.0  # no movement: TA-Lib takes efficiency 1 (KAMA then equals the close)
    er[np.isnan(volatility) | np.isnan(change)] = np.nan
    fast_sc, slow_sc = 2.0 / (fast + 1), 2.0 / (slow + 1)
    sc = (er * (fast_sc - slow_sc) + slow_sc) ** 2
    prev = r.shift(close)
    seed = (close - prev) * sc + prev
    return r.recurse(close, seed, sc)


def compute(p: Panel) -> dict[str, np.ndarray]:
    lo, c, v = p.low, p.close, p.volume
    out: dict[str, np.ndarray] = {}

    out["momentum.awesome_oscillator.awesome_oscillator"] = r.rolling_mean(
        p.median, AO_FAST
    ) - r.rolling_mean(p.median, AO_SLOW)
    out["momentum.kama.kama"] = kama(c)

    for name, series in (("ppo", c), ("pvo", v)):
        line, sig, hist = _oscillator(series, PPO_FAST, PPO_SLOW, PPO_SIGNAL)
        out[f"momentum.{name}.{name}"] = line
        out[f"momentum.{name}.{name}_signal"] = sig
        out[f"momentum.{name}.{name}_hist"] = hist

    out["momentum.roc.roc"] = 100.0 * r.safe_div(r.diff(c, ROC_N), r.shift(c, ROC_N))

    rs = rsi(c)
    out["momentum.rsi.rsi"] = rs
    rs_max, rs_min = r.rolling_max(rs, STOCHRSI_N), r.rolling_min(rs, STOCHRSI_N)
    srsi = r.safe_div(rs - rs_min, rs_max - rs_min)
    srsi_k = r.rolling_mean(srsi, STOCHRSI_K)
    out["momentum.stochrsi.stochrsi"] = srsi
    out["momentum.stochrsi.stochrsi_k"] = srsi_k
    out["momentum.stochrsi.stochrsi_d"] = r.rolling_mean(srsi_k, STOCHRSI_D)

    k = stochastic_k(p, STOCH_N)
    out["momentum.stoch.stoch"] = k
    out["momentum.stoch.stoch_signal"] = r.rolling_mean(k, STOCH_D)

    d = p.close_diff
    num = r.ema(r.ema(d, TSI_SLOW), TSI_FAST)
    den = r.ema(r.ema(np.abs(d), TSI_SLOW), TSI_FAST)
    out["momentum.tsi.tsi"] = 100.0 * r.safe_div(num, den)

    pc = p.prev_close
    low_or_pc = np.fmin(lo, pc)
    buying = c - low_or_pc
    tr = p.true_range
    r.mark_nan(buying, tr)
    bw, tw = r.Windows(buying), p.true_range_windows
    avgs = [r.safe_div(bw.sum(w), tw.sum(w)) for w in UO_WINDOWS]
    uo: np.ndarray = sum(wt * a for wt, a in zip(UO_WEIGHTS, avgs, strict=True))  # type: ignore[assignment]
    out["momentum.ultimate_oscillator.ultimate_oscillator"] = 100.0 * uo / sum(UO_WEIGHTS)

    hh, ll = p.high_max.window(WILLR_N), p.low_min.window(WILLR_N)
    out["momentum.williams_r.williams_r"] = -100.0 * r.safe_div(hh - c, hh - ll)
    return out
