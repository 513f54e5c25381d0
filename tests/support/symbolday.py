"""An in-memory SymbolDay (no database) for page tests: a month of bars, five dates of A2 values
and a dealer document that is FULL, or INVALID with every metric null as A3 writes it."""

from __future__ import annotations

from datetime import date

from kapman.calendar import trading_days
from kapman.report.data import Bars, History, SymbolDay

DAYS = list(trading_days(date(2025, 11, 20), date(2025, 12, 19)))


def symbol_day(status: str = "FULL") -> SymbolDay:
    n = len(DAYS)
    close = [100.0 + i for i in range(n)]
    bars = Bars(DAYS, [c - 0.5 for c in close], [c + 1 for c in close], [c - 1 for c in close], close,
                [1e6 + 1e4 * i for i in range(n)])
    indicators = {d: {"sma_20": 101.0 + i, "sma_50": None, "sma_200": None, "bb_upper": 110.0 + i,
                      "bb_middle": 101.0 + i, "bb_lower": 92.0 + i, "rsi": 55.0, "macd": 0.5, "macd_signal": 0.4,
                      "macd_diff": 0.1} for i, d in enumerate(DAYS[-5:])}
    technical = {"momentum": {"rsi": {"rsi": 55.0}}, "trend": {"sma": {"sma_20": 105.0, "sma_50": None},
                                                              "macd": {"macd": 0.5, "macd_signal": 0.4}}}
    dealer: dict = {"status": status, "status_reason": None if status == "FULL" else "no_snapshot",
              "spot": close[-1], "gex_net": -48_700_000.0, "gex_gross": 962_250_000.0, "position": "neutral",
              "gamma_flip": 127.89, "gamma_flip_distance_pct": 2.76, "call_wall": 130.0, "put_wall": 120.0,
              "max_pain": 125.0, "max_pain_expiration": "2025-12-26", "put_call_oi_ratio": 1.02, "atm_iv": 0.221,
              "dex_net": 1.2e10, "gex_by_dte": {"0-7": {"net": 3e7, "gross": 1.3e8, "contracts": 40},
                                                "8-30": {"net": -9e7, "gross": 4.3e8, "contracts": 60}},
              "strike_profile": {"strikes": [115.0, 120.0, 125.0, 130.0], "gex": [-1e6, -7e7, 2e6, 4.6e7]}}
    history = History(DAYS[-3:], close[-3:], [1.9e8, 2.6e7, -4.87e7], [120.0, 124.0, 127.89])
    if status == "INVALID":
        dealer.update({k: None for k in ("spot", "gex_net", "gex_gross", "position", "gamma_flip",
                                         "gamma_flip_distance_pct", "call_wall", "put_wall", "max_pain",
                                         "max_pain_expiration", "put_call_oi_ratio", "atm_iv", "dex_net")})
        dealer["gex_by_dte"] = {"0-7": None, "8-30": None, "31-90": None}
        dealer["strike_profile"] = {"strikes": [], "gex": []}
    return SymbolDay("TEST", DAYS[-1], bars, indicators, technical, {"rvol": 1.4, "hv": 0.234}, dealer, history)
