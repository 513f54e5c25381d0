"""TA-Lib candlestick patterns (``pattern_recognition.cdl*``), opt-in: needs the `patterns` extra.

Values are TA-Lib's: +100 / -100 (bullish / bearish; some patterns +-200 for a confirmed variant) or
0, as float64; NaN during each pattern's look-back and wherever that look-back holds a NaN bar.
"""

from __future__ import annotations

import numpy as np

from kapman.metrics import _rolling as r

PATTERN_FUNCS: tuple[str, ...] = (
    "CDL2CROWS", "CDL3BLACKCROWS", "CDL3INSIDE", "CDL3LINESTRIKE", "CDL3OUTSIDE", "CDL3STARSINSOUTH",
    "CDL3WHITESOLDIERS", "CDLABANDONEDBABY", "CDLADVANCEBLOCK", "CDLBELTHOLD", "CDLBREAKAWAY",
    "CDLCLOSINGMARUBOZU", "CDLCONCEALBABYSWALL", "CDLCOUNTERATTACK", "CDLDARKCLOUDCOVER", "CDLDOJI",
    "CDLDOJISTAR", "CDLDRAGONFLYDOJI", "CDLENGULFING", "CDLEVENINGDOJISTAR", "CDLEVENINGSTAR",
    "CDLGAPSIDESIDEWHITE", "CDLGRAVESTONEDOJI", "CDLHAMMER", "CDLHANGINGMAN", "CDLHARAMI",
    "CDLHARAMICROSS", "CDLHIGHWAVE", "CDLHIKKAKE", "CDLHIKKAKEMOD", "CDLHOMINGPIGEON",
    "CDLIDENTICAL3CROWS", "CDLINNECK", "CDLINVERTEDHAMMER", "CDLKICKING", "CDLKICKINGBYLENGTH",
    "CDLLADDERBOTTOM", "CDLLONGLEGGEDDOJI", "CDLLONGLINE", "CDLMARUBOZU", "CDLMATCHINGLOW",
    "CDLMATHOLD", "CDLMORNINGDOJISTAR", "CDLMORNINGSTAR", "CDLONNECK", "CDLPIERCING",
    "CDLRICKSHAWMAN", "CDLRISEFALL3METHODS", "CDLSEPARATINGLINES", "CDLSHOOTINGSTAR",
    "CDLSHORTLINE", "CDLSPINNINGTOP", "CDLSTALLEDPATTERN", "CDLSTICKSANDWICH", "CDLTAKURI",
    "CDLTASUKIGAP", "CDLTHRUSTING", "CDLTRISTAR", "CDLUNIQUE3RIVER", "CDLUPSIDEGAP2CROWS",
    "CDLXSIDEGAP3METHODS",
)  # fmt: skip
#: The A2 document's category that holds them.
PATTERN_CATEGORY = "pattern_recognition"
PATTERN_KEYS: tuple[str, ...] = tuple(f"{PATTERN_CATEGORY}.{f.lower()}" for f in PATTERN_FUNCS)


def compute_patterns(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> dict[str, np.ndarray]:
    """Every CDL pattern for (T, N) OHLC arrays; TA-Lib is called once per ticker and pattern."""
    import talib  # optional dependency, imported only when patterns are requested
    from talib import abstract

    o, h, lo, c = (np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close))
    t_len, n = c.shape
    bar_nan = (np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c)).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for func, key in zip(PATTERN_FUNCS, PATTERN_KEYS, strict=True):
        fn = getattr(talib, func)
        lookback = abstract.Function(func).lookback  # type: ignore[attr-defined]  # generated at import
        res = np.full((t_len, n), np.nan)
        for j in range(n):
            rows = ~bar_nan[:, j].astype(bool)
            last = int(np.flatnonzero(rows)[-1]) + 1 if rows.any() else 0
            if last > lookback:
                res[:last, j] = fn(o[:last, j], h[:last, j], lo[:last, j], c[:last, j])
        res[:lookback] = np.nan
        if lookback >= 0:  # a NaN bar poisons every pattern window that contains it
            res[r.rolling_sum(bar_nan, lookback + 1) != 0] = np.nan
        out[key] = res
    return out
