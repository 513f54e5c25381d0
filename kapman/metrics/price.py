"""Price metrics for ``price_metrics_json``: relative volume, volume surprise, historical volatility.

Inputs are (T bars x N tickers) float64 arrays, oldest bar first; outputs have the same shape.
"""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r

VOLUME_WINDOW = 20  # prior bars that define "normal" volume for rvol and vsi
HV_WINDOW = 20  # daily log returns in the historical-volatility window (about one month)
TRADING_DAYS = 252  # annualisation factor for hv

PRICE_KEYS: tuple[str, ...] = ("rvol", "vsi", "hv", "close")


def compute_price_metrics(close: np.ndarray, volume: np.ndarray) -> dict[str, np.ndarray]:
    """rvol, vsi, hv and close for every bar.

    rvol  = volume[t] / mean(volume[t-20 .. t-1])              (NaN when that mean is 0)
    vsi   = (volume[t] - mean) / std over the same prior 20 bars, population std (NaN when std is 0)
    hv    = sample std (ddof=1) of the 20 log returns ln(C[t-k] / C[t-k-1]), k = 0..19, x sqrt(252);
            annualised, as a decimal fraction (0.25 = 25 %)
    close = the bar's close
    """
    c = np.ascontiguousarray(close, dtype=np.float64)
    v = np.ascontiguousarray(volume, dtype=np.float64)
    prior = r.shift(v)
    mean = r.rolling_mean(prior, VOLUME_WINDOW)
    std = r.rolling_std(prior, VOLUME_WINDOW, ddof=0)  # exactly 0 when the 20 volumes are identical
    ratio = r.safe_div(c, r.shift(c))
    with np.errstate(invalid="ignore", divide="ignore"):
        logret = np.log(ratio)
    logret[~(ratio > 0)] = np.nan
    hv = r.rolling_std(logret, HV_WINDOW, ddof=1) * np.sqrt(TRADING_DAYS)
    return {
        "rvol": r.safe_div(v, mean),
        "vsi": r.safe_div(v - mean, std),
        "hv": hv,
        "close": c.copy(),
    }
