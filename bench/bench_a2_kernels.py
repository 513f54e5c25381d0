"""Time the vectorised A2 kernels against a per-ticker TA-Lib loop over the same panel.

    venv/bin/python -m bench.bench_a2_kernels [--tickers 11000] [--bars 300] [--repeat 3]

The TA-Lib side computes the indicators TA-Lib has (one call per ticker and function); the kernel
side computes every A2 key. Both report the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from kapman.metrics.indicators import TECHNICAL_KEYS, compute_technical
from kapman.metrics.price import compute_price_metrics


def synthetic_panel(bars: int, tickers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (bars, tickers)), axis=0))
    high = close * (1.0 + rng.uniform(0.0, 0.02, (bars, tickers)))
    low = close * (1.0 - rng.uniform(0.0, 0.02, (bars, tickers)))
    open_ = low + (high - low) * rng.uniform(0.0, 1.0, (bars, tickers))
    volume = rng.lognormal(13.0, 0.5, (bars, tickers))
    return open_, high, low, close, volume


def talib_loop(open_, high, low, close, volume) -> int:
    """The TA-Lib equivalents of the A2 keys, one ticker at a time; returns the number of calls."""
    import talib

    calls = 0
    for j in range(close.shape[1]):
        o, h, lo, c, v = (np.ascontiguousarray(a[:, j]) for a in (open_, high, low, close, volume))
        talib.AO(h, lo)
        talib.KAMA(c, 10)
        ppo = talib.PPO(c, 12, 26, 1)
        talib.EMA(ppo, 9)
        pvo = talib.PPO(v, 12, 26, 1)
        talib.EMA(pvo, 9)
        talib.ROC(c, 12)
        talib.RSI(c, 14)
        k, d = talib.STOCHRSI(c, 14, 14, 3, 0)
        talib.SMA(d, 3)
        talib.STOCHF(h, lo, c, 14, 3, 0)
        talib.TSI(c, 25, 13)
        talib.ULTOSC(h, lo, c, 7, 14, 28)
        talib.WILLR(h, lo, c, 14)
        talib.ATR(h, lo, c, 14)
        talib.BBANDS(c, 20, 2.0, 2.0, 0)
        talib.DONCHIAN(h, lo, 20)
        talib.SMA(c, 20)
        talib.EMA(c, 20)
        talib.ATR(h, lo, c, 10)
        talib.MAX(c, 14)
        talib.ADX(h, lo, c, 14)
        talib.PLUS_DI(h, lo, c, 14)
        talib.MINUS_DI(h, lo, c, 14)
        talib.AROON(h, lo, 25)
        talib.CCI(h, lo, c, 20)
        talib.EMA(c, 14)
        talib.MIDPRICE(h, lo, 9)
        talib.MIDPRICE(h, lo, 26)
        talib.MIDPRICE(h, lo, 52)
        for n in (10, 15, 20, 30):
            talib.SMA(talib.ROCP(c, n), 10)
        talib.MACD(c, 12, 26, 9)
        talib.MASSI(h, lo, 9, 25)
        talib.SAR(h, lo, 0.02, 0.2)
        for n in (14, 20, 50, 200):
            talib.SMA(c, n)
        talib.MACD(c, 23, 50, 1)
        talib.TRIX(c, 15)
        talib.VORTEX(h, lo, c, 14)
        talib.WMA(c, 9)
        talib.AD(h, lo, c, v)
        talib.CMF(h, lo, c, v, 20)
        talib.EFI(c, v, 13)
        talib.MFI(h, lo, c, v, 14)
        talib.NVI(c, v)
        talib.OBV(c, v)
        talib.PVT(c, v)
        talib.SMA(talib.TYPPRICE(h, lo, c) * v, 14)
        talib.ROCP(c, 1)
        calls += 57
    return calls


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=11_000)
    ap.add_argument("--bars", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    panel = synthetic_panel(args.bars, args.tickers)
    print(f"panel: {args.bars} bars x {args.tickers} tickers, median of {args.repeat}")
    kern = median_seconds(lambda: compute_technical(*panel), args.repeat)
    print(f"kernels  compute_technical ({len(TECHNICAL_KEYS)} keys): {kern:8.3f} s")
    price = median_seconds(lambda: compute_price_metrics(panel[3], panel[4]), args.repeat)
    print(f"kernels  compute_price_metrics (4 keys):          {price:8.3f} s")
    ta = median_seconds(lambda: talib_loop(*panel), args.repeat)
    print(f"TA-Lib   per-ticker loop (57 calls per ticker):    {ta:8.3f} s")
    print(f"ratio    TA-Lib loop / kernels:                    {ta / kern:8.2f}x")


if __name__ == "__main__":
    main()
