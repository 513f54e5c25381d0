"""Fill a rebuilt database with a small, coherent synthetic data set, straight through SQL.

``hydrate(conn)`` writes, in one transaction (deterministic: same rows on every call):

* tickers AAPL, MSFT, NVDA (CS), SPY (ETF), all active, and OLDCO (CS, delisted, inactive);
* watchlist ``mvp``: AAPL, MSFT, NVDA, SPY, OLDCO and ZZZZ (no ticker) active, IBM removed (inactive);
* ohlcv: the 40 NYSE trading days ending 2025-12-19 (so Thanksgiving 2025-11-27 has no rows) for
  the four active tickers; MSFT skips 2025-12-03 (a gap), NVDA has a zero-volume day on
  2025-12-01; every bar satisfies low <= open, close <= high and positive prices;
* options_chains: snapshot 2025-12-18 21:05 UTC with AAPL (40 contracts), MSFT (40) and SPY (12),
  snapshot 2025-12-19 21:05 UTC with AAPL and SPY only; the farthest strikes of the last
  expiration have NULL greeks, one contract also a NULL IV;
* daily_snapshots on the last 5 trading days for each active ticker: technical_indicators_json
  (nested ``category.indicator.output`` keys; sma_50 and sma_200 null, too little history) and
  price_metrics_json (rvol, vsi, hv, close); dealer_metrics_json on 2025-12-18 and 2025-12-19:
  AAPL FULL, SPY LIMITED (few_eligible_contracts), MSFT FULL then INVALID (no_snapshot), NVDA none;
* ingest_runs: one ohlcv run, two options runs (the second partial, MSFT failed); ingest_files:
  the flat files of the last 3 trading days.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from kapman.calendar import trading_days
from kapman.ids import ticker_id
from tests.support.database import NewRebuiltDb

NEW_YORK = ZoneInfo("America/New_York")
LAST_DAY = date(2025, 12, 19)
N_DAYS = 40
DAYS: list[date] = list(trading_days(date(2025, 9, 1), LAST_DAY))[-N_DAYS:]
HOLIDAY = date(2025, 11, 27)
GAP = ("MSFT", date(2025, 12, 3))
ZERO_VOLUME = ("NVDA", date(2025, 12, 1))

#: symbol -> (name, type, primary exchange, start price, typical volume)
TICKERS: dict[str, tuple[str, str, str, float, float]] = {
    "AAPL": ("Apple Inc.", "CS", "XNAS", 268.0, 52e6),
    "MSFT": ("Microsoft Corporation", "CS", "XNAS", 512.0, 21e6),
    "NVDA": ("NVIDIA Corporation", "CS", "XNAS", 181.0, 180e6),
    "SPY": ("SPDR S&P 500 ETF Trust", "ETF", "ARCX", 671.0, 75e6),
}
INACTIVE_TICKER = "OLDCO"
WATCHLIST = "mvp"
WATCHLIST_ACTIVE = ["AAPL", "MSFT", "NVDA", "SPY", INACTIVE_TICKER, "ZZZZ"]
UNRESOLVED = "ZZZZ"
WATCHLIST_REMOVED = "IBM"

SNAPSHOTS: dict[datetime, list[str]] = {
    datetime(2025, 12, 18, 21, 5, tzinfo=UTC): ["AAPL", "MSFT", "SPY"],
    datetime(2025, 12, 19, 21, 5, tzinfo=UTC): ["AAPL", "SPY"],
}
#: symbol -> (expirations, strikes either side of spot, strike step)
CHAINS: dict[str, tuple[list[date], int, float]] = {
    "AAPL": ([date(2025, 12, 19), date(2025, 12, 26), date(2026, 1, 16), date(2026, 2, 20)], 2, 5.0),
    "MSFT": ([date(2025, 12, 19), date(2025, 12, 26), date(2026, 1, 16), date(2026, 2, 20)], 2, 5.0),
    "SPY": ([date(2025, 12, 26), date(2026, 1, 16)], 1, 5.0),
}
SNAPSHOT_DAYS = DAYS[-5:]
DEALER_DAYS = DAYS[-2:]


Bars = dict[str, list[dict[str, Any]]]
Chains = dict[tuple[str, date], tuple[datetime, list[dict[str, Any]]]]


@dataclass(frozen=True)
class Hydrated:
    """Row counts written, for tests to compare dashboard output against."""

    tickers: int
    watchlist_rows: int
    ohlcv_rows: int
    options_rows: dict[datetime, int]
    snapshot_rows: int
    dealer_status: dict[tuple[str, date], str]


def snapshot_time(day: date) -> datetime:
    """The daily_snapshots stamp of a trading date: 16:00 America/New_York, in UTC."""
    return datetime.combine(day, time(16, 0), tzinfo=NEW_YORK).astimezone(UTC)


# --- bars -----------------------------------------------------------------------------------------

def _bars() -> Bars:
    rng = random.Random(20251219)
    out: Bars = {}
    for symbol, (_, _, _, price, volume) in TICKERS.items():
        bars, close = [], price
        for day in DAYS:
            if (symbol, day) == GAP:
                continue
            if (symbol, day) == ZERO_VOLUME:    # halted: a flat bar without trades
                bars.append(dict(date=day, open=close, high=close, low=close, close=close, volume=0.0,
                                 vwap=None, transactions=0))
                continue
            open_ = round(close * (1 + rng.gauss(0, 0.004)), 2)
            close = round(open_ * (1 + rng.gauss(0.0005, 0.012)), 2)
            high = round(max(open_, close) * (1 + abs(rng.gauss(0, 0.005))), 2)
            low = round(min(open_, close) * (1 - abs(rng.gauss(0, 0.005))), 2)
            vol = float(round(volume * math.exp(rng.gauss(0, 0.3))))
            bars.append(dict(date=day, open=open_, high=high, low=low, close=close, volume=vol,
                             vwap=round((high + low + close) / 3, 4), transactions=int(vol / 90)))
        out[symbol] = bars
    return out


# --- A2 payloads ----------------------------------------------------------------------------------

def _sma(values: list[float], n: int) -> float | None:
    return sum(values[-n:]) / n if len(values) >= n else None


def _ema(values: list[float], n: int) -> list[float]:
    k, out = 2 / (n + 1), [values[0]]
    for v in values[1:]:
        out.append(out[-1] + k * (v - out[-1]))
    return out


def _wilder(values: list[float], n: int) -> float | None:
    if len(values) < n:
        return None
    avg = sum(values[:n]) / n
    for v in values[n:]:
        avg = (avg * (n - 1) + v) / n
    return avg


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _ta(history: list[dict[str, Any]]) -> dict[str, Any]:
    """A few indicators of the A2 surface for the last bar of ``history``; null where too short."""
    close = [b["close"] for b in history]
    high = [b["high"] for b in history]
    low = [b["low"] for b in history]
    diffs = [b - a for a, b in zip(close, close[1:], strict=False)]
    gain = _wilder([max(d, 0.0) for d in diffs], 14)
    loss = _wilder([max(-d, 0.0) for d in diffs], 14)
    rsi = None if gain is None or loss is None else (100.0 if loss == 0 else 100 - 100 / (1 + gain / loss))
    tr = [max(h, c0) - min(lo, c0) for h, lo, c0 in zip(high[1:], low[1:], close, strict=False)]
    up = [max(h1 - h0, 0.0) if h1 - h0 > l0 - l1 else 0.0
          for h0, h1, l0, l1 in zip(high, high[1:], low, low[1:], strict=False)]
    dn = [max(l0 - l1, 0.0) if l0 - l1 > h1 - h0 else 0.0
          for h0, h1, l0, l1 in zip(high, high[1:], low, low[1:], strict=False)]
    atr, pdm, ndm = _wilder(tr, 14), _wilder(up, 14), _wilder(dn, 14)
    adx = None
    if len(tr) >= 27 and atr and pdm is not None and ndm is not None:
        dx = []
        for end in range(14, len(tr) + 1):
            a, p, n = _wilder(tr[:end], 14), _wilder(up[:end], 14), _wilder(dn[:end], 14)
            pdi, ndi = 100 * p / a, 100 * n / a    # type: ignore[operator]
            dx.append(100 * abs(pdi - ndi) / (pdi + ndi) if pdi + ndi else 0.0)
        adx = _wilder(dx, 14)
    macd_line = [a - b for a, b in zip(_ema(close, 12), _ema(close, 26), strict=True)]
    macd = macd_line[-1] if len(close) >= 26 else None
    signal = _ema(macd_line[25:], 9)[-1] if len(close) >= 34 else None
    mavg = _sma(close, 20)
    hband = lband = pband = None
    if mavg is not None:
        sd = statistics.pstdev(close[-20:])
        hband, lband = mavg + 2 * sd, mavg - 2 * sd
        pband = (close[-1] - lband) / (hband - lband) if hband > lband else None
    aroon_up = aroon_down = None
    if len(close) >= 26:
        window_h, window_l = high[-26:], low[-26:]
        since_high = 25 - max(i for i, v in enumerate(window_h) if v == max(window_h))
        since_low = 25 - max(i for i, v in enumerate(window_l) if v == min(window_l))
        aroon_up, aroon_down = 100 * (25 - since_high) / 25, 100 * (25 - since_low) / 25
    return {
        "momentum": {"rsi": {"rsi": _r(rsi)}},
        "trend": {
            "sma": {"sma_14": _r(_sma(close, 14)), "sma_20": _r(mavg), "sma_50": _r(_sma(close, 50)),
                    "sma_200": _r(_sma(close, 200))},
            "aroon": {"aroon_up": _r(aroon_up), "aroon_down": _r(aroon_down),
                      "aroon_indicator": _r(None if aroon_up is None else aroon_up - aroon_down)},  # type: ignore[operator]
            "macd": {"macd": _r(macd), "macd_signal": _r(signal),
                     "macd_diff": _r(None if macd is None or signal is None else macd - signal)},
            "adx": {"adx": _r(adx)},
        },
        "volatility": {
            "atr": {"average_true_range": _r(atr)},
            "bbands": {"bollinger_mavg": _r(mavg), "bollinger_hband": _r(hband), "bollinger_lband": _r(lband),
                       "bollinger_pband": _r(pband)},
        },
    }


def _price_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    close = [b["close"] for b in history]
    volume = [b["volume"] for b in history]
    prior = volume[-21:-1]
    mean = sum(prior) / len(prior) if len(prior) == 20 else None
    std = statistics.pstdev(prior) if mean is not None else None
    logret = [math.log(b / a) for a, b in zip(close[-21:], close[-20:], strict=False)]
    hv = statistics.stdev(logret) * math.sqrt(252) if len(logret) == 20 else None
    return {
        "rvol": _r(volume[-1] / mean if mean else None),
        "vsi": _r((volume[-1] - mean) / std if mean is not None and std else None),
        "hv": _r(hv, 6),
        "close": close[-1],
    }


# --- options and A3 payloads ----------------------------------------------------------------------

def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _chain(symbol: str, spot: float, snap: datetime, rng: random.Random) -> list[dict[str, Any]]:
    expirations, width, step = CHAINS[symbol]
    atm = round(spot / step) * step
    as_of = snap.astimezone(NEW_YORK).date()
    rows = []
    for e_idx, expiration in enumerate(expirations):
        t = max((expiration - as_of).days, 0.5) / 365
        for k in range(-width, width + 1):
            strike = atm + k * step
            iv = 0.24 + 0.03 * abs(k) + 0.01 * e_idx
            d1 = (math.log(spot / strike) + (0.04 + iv * iv / 2) * t) / (iv * math.sqrt(t))
            pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
            for option_type in ("C", "P"):
                delta = _ncdf(d1) if option_type == "C" else _ncdf(d1) - 1
                intrinsic = max(spot - strike, 0.0) if option_type == "C" else max(strike - spot, 0.0)
                price = round(intrinsic + spot * iv * math.sqrt(t) * pdf * 0.8, 2)
                no_greeks = e_idx == len(expirations) - 1 and abs(k) == width
                no_iv = no_greeks and k == width and option_type == "C"
                rows.append(dict(
                    expiration_date=expiration, strike_price=strike, option_type=option_type,
                    contract_symbol=f"O:{symbol}{expiration:%y%m%d}{option_type}{int(strike * 1000):08d}",
                    underlying_price=spot, bid=round(price * 0.98, 2), ask=round(price * 1.02, 2), last=price,
                    volume=rng.randint(0, 5000), open_interest=rng.randint(50, 40000),
                    implied_volatility=None if no_iv else round(iv, 6),
                    delta=None if no_greeks else round(delta, 6),
                    gamma=None if no_greeks else round(pdf / (spot * iv * math.sqrt(t)), 6),
                    theta=None if no_greeks else round(-spot * pdf * iv / (2 * math.sqrt(t)) / 365, 6),
                    vega=None if no_greeks else round(spot * pdf * math.sqrt(t) / 100, 6)))
    return rows


def written(snap: datetime) -> datetime:
    """When the options run of ``snap`` wrote its chains (``updated_at``), as A3 records it."""
    return snap + timedelta(minutes=2)


def _dealer_payload(as_of: date, snap: datetime | None, spot: float, spot_source: str,
                    chain: list[dict[str, Any]]) -> dict[str, Any]:
    """A dealer_metrics_json document with every key of docs/a3_dealer_metrics.md."""
    universe = [c for c in chain if as_of <= c["expiration_date"] <= as_of + timedelta(days=90)]
    eligible = [c for c in universe
                if c["open_interest"] >= 1 and (c["gamma"] is not None or c["implied_volatility"])]
    payload: dict[str, Any] = {
        "schema_version": 1, "status": "INVALID", "status_reason": None, "as_of": as_of.isoformat(),
        "snapshot_time": snap.isoformat() if snap else None,
        "snapshot_written_at": written(snap).isoformat() if snap else None, "spot": spot, "spot_source": spot_source,
        "position": None, "gex_ratio": None, "gex_net": None, "gex_gross": None,
        "gex_by_dte": {"0-7": None, "8-30": None, "31-90": None},
        "gamma_flip": None, "gamma_flip_reason": None, "gamma_flip_distance_pct": None,
        "gamma_flip_crossings": None, "call_wall": None, "put_wall": None, "call_walls": [], "put_walls": [],
        "max_pain": None, "max_pain_expiration": None, "put_call_oi_ratio": None,
        "put_call_volume_ratio": None, "dex_net": None, "atm_iv": None, "atm_iv_expiration": None,
        "strike_profile": {"strikes": [], "gex": []},
        "counts": {"total": len(chain), "eligible": len(eligible),
                   "excluded": {"invalid_contract": 0, "adjusted_deliverable": 0, "expired": 0,
                                "beyond_max_dte": len(chain) - len(universe), "below_min_open_interest": 0,
                                "no_gamma_no_iv": len(universe) - len(eligible)},
                   "calls": sum(c["option_type"] == "C" for c in eligible),
                   "puts": sum(c["option_type"] == "P" for c in eligible),
                   "expirations": len({c["expiration_date"] for c in eligible}),
                   "gamma_from_iv": sum(c["gamma"] is None for c in eligible),
                   "flip_excluded_no_iv": 0, "dex_missing_delta": sum(c["delta"] is None for c in eligible)},
        "params": {"max_dte": 90, "min_open_interest": 1, "limited_below": 25, "wall_count": 3},
        "conventions": {"dealer_side": "dealers are long calls and short puts",
                        "gex": "USD per 1% move of the underlying"},
    }
    if snap is None or not eligible:
        payload["status_reason"] = "no_snapshot" if snap is None else "no_eligible_contracts"
        return payload
    gex_by_strike: dict[tuple[str, float], float] = {}
    for c in eligible:
        gamma = c["gamma"] if c["gamma"] is not None else 0.0
        gex = (1 if c["option_type"] == "C" else -1) * gamma * c["open_interest"] * 100 * spot * spot * 0.01
        key = (c["option_type"], c["strike_price"])
        gex_by_strike[key] = gex_by_strike.get(key, 0.0) + gex
    net, gross = sum(gex_by_strike.values()), sum(abs(g) for g in gex_by_strike.values())
    calls = sorted(((g, k) for (t, k), g in gex_by_strike.items() if t == "C"), reverse=True)
    puts = sorted(((abs(g), k, g) for (t, k), g in gex_by_strike.items() if t == "P"), reverse=True)

    def wall(strike: float, gex: float) -> dict[str, Any]:
        oi = sum(c["open_interest"] for c in eligible if c["strike_price"] == strike)
        return {"strike": strike, "gex": round(gex, 2), "open_interest": oi,
                "distance_pct": round((strike - spot) / spot * 100, 3)}

    ratio = net / gross
    reasons = [r for r, bad in (("few_eligible_contracts", len(eligible) < 25),
                                ("single_expiration", payload["counts"]["expirations"] < 2)) if bad]
    payload.update({
        "status": "LIMITED" if reasons else "FULL", "status_reason": "; ".join(reasons) or None,
        "gex_net": round(net, 2), "gex_gross": round(gross, 2), "gex_ratio": round(ratio, 4),
        "position": "neutral" if abs(ratio) < 0.1 else ("long_gamma" if ratio > 0 else "short_gamma"),
        "gamma_flip": round(spot * 0.975, 4), "gamma_flip_distance_pct": -2.5, "gamma_flip_crossings": 1,
        "call_wall": calls[0][1], "put_wall": puts[0][1],
        "call_walls": [wall(k, g) for g, k in calls[:3]], "put_walls": [wall(k, g) for _, k, g in puts[:3]],
        "max_pain": min((c["strike_price"] for c in universe), key=lambda k: (abs(k - spot), k)),
        "max_pain_expiration": min(c["expiration_date"] for c in universe).isoformat(),
        "atm_iv": 0.25, "atm_iv_expiration": sorted({c["expiration_date"] for c in universe})[-1].isoformat(),
    })
    return payload


# --- writing --------------------------------------------------------------------------------------

def _insert(cur: psycopg.Cursor[Any], table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    placeholders = ", ".join(["%s"] * len(columns.split(",")))
    cur.executemany(f"INSERT INTO public.{table} ({columns}) VALUES ({placeholders})", rows)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    """A UTC instant on the morning after ``day`` (when the batch jobs run)."""
    return datetime.combine(day + timedelta(days=1), time(hour, minute), tzinfo=UTC)


def _reference(cur: psycopg.Cursor[Any], ids: dict[str, uuid.UUID]) -> None:
    updated = datetime(2025, 12, 19, 12, tzinfo=UTC)
    delisted = datetime(2025, 6, 30, tzinfo=UTC)
    _insert(cur, "tickers", "id, symbol, name, market, locale, type, primary_exchange, currency_name, "
            "active, delisted_utc, last_updated_utc",
            [(ids[s], s, name, "stocks", "us", kind, exchange, "usd", True, None, updated)
             for s, (name, kind, exchange, _, _) in TICKERS.items()]
            + [(ids[INACTIVE_TICKER], INACTIVE_TICKER, "Old Company Inc.", "stocks", "us", "CS", "XNYS",
                "usd", False, delisted, delisted)])
    source = "data/watchlists/mvp.txt"
    _insert(cur, "watchlists", "watchlist_id, symbol, active, source, effective_date, deactivated_at",
            [(WATCHLIST, s, True, source, date(2025, 12, 1), None) for s in WATCHLIST_ACTIVE]
            + [(WATCHLIST, WATCHLIST_REMOVED, False, source, date(2025, 11, 3),
                datetime(2025, 12, 1, 14, tzinfo=UTC))])


def _ohlcv(cur: psycopg.Cursor[Any], ids: dict[str, uuid.UUID], bars: Bars) -> None:
    _insert(cur, "ohlcv", "ticker_id, date, open, high, low, close, volume, vwap, transactions",
            [(ids[s], b["date"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["vwap"],
              b["transactions"]) for s, series in bars.items() for b in series])
    run_id = uuid.UUID(int=1)
    _insert(cur, "ingest_runs", "run_id, job, started_at, finished_at, status, args, summary",
            [(run_id, "ohlcv", _at(LAST_DAY, 6), _at(LAST_DAY, 6, 2), "ok", Jsonb({"mode": "base"}),
              Jsonb({"files_loaded": 3}))])
    files = []
    for day in DAYS[-3:]:
        loaded = sum(1 for series in bars.values() for b in series if b["date"] == day)
        rejected = 1 if day == DAYS[-2] else 0
        files.append(("s3://flatfiles", f"us_stocks_sip/day_aggs_v1/{day:%Y/%m}/{day:%Y-%m-%d}.csv.gz", day,
                      hashlib.md5(day.isoformat().encode()).hexdigest(), 1_200 + 80 * loaded,
                      loaded + 1 + rejected, loaded, rejected, 1, run_id, _at(day, 6, 1)))
    _insert(cur, "ingest_files", "source, key, trading_date, etag, size_bytes, rows_read, rows_loaded, "
            "rows_rejected, rows_unknown, run_id, loaded_at", files)


def _options(cur: psycopg.Cursor[Any], ids: dict[str, uuid.UUID],
             bars: Bars) -> tuple[Chains, dict[datetime, int]]:
    rng = random.Random(7)
    chains: Chains = {}
    counts: dict[datetime, int] = {}
    for n, (snap, symbols) in enumerate(SNAPSHOTS.items(), start=2):
        day = snap.astimezone(NEW_YORK).date()
        rows = []
        for s in symbols:
            spot = next(b["close"] for b in bars[s] if b["date"] == day)
            chain = chains[(s, day)] = (snap, _chain(s, spot, snap, rng))
            rows += [(snap, written(snap), written(snap), ids[s], c["expiration_date"], c["strike_price"],
                      c["option_type"], c["contract_symbol"], 100, c["underlying_price"], c["bid"], c["ask"], c["last"],
                      c["volume"], c["open_interest"], c["implied_volatility"], c["delta"], c["gamma"],
                      c["theta"], c["vega"]) for c in chain[1]]
        _insert(cur, "options_chains", "time, created_at, updated_at, ticker_id, expiration_date, strike_price, "
                "option_type, contract_symbol, shares_per_contract, underlying_price, bid, ask, last, volume, "
                "open_interest, implied_volatility, delta, gamma, theta, vega", rows)
        counts[snap] = len(rows)
        failed = [s for s in CHAINS if s not in symbols]
        _insert(cur, "ingest_runs",
                "run_id, job, started_at, finished_at, status, snapshot_time, args, summary",
                [(uuid.UUID(int=n), "options", snap - timedelta(minutes=5), snap + timedelta(minutes=3),
                  "partial" if failed else "ok", snap, Jsonb({"symbols": "watchlists"}),
                  Jsonb({"symbols_ok": len(symbols), "symbols_failed": failed, "contracts": len(rows)}))])
    return chains, counts


def _snapshots(cur: psycopg.Cursor[Any], ids: dict[str, uuid.UUID], bars: Bars,
               chains: Chains) -> tuple[int, dict[tuple[str, date], str]]:
    rows, status = [], {}
    for s, series in bars.items():
        for day in SNAPSHOT_DAYS:
            history = [b for b in series if b["date"] <= day]
            if history[-1]["date"] != day:       # no bar that day: no snapshot row either
                continue
            dealer: dict[str, Any] | None = None
            snap: datetime | None = None
            if day in DEALER_DAYS and s in CHAINS:
                snap, chain = chains.get((s, day), (None, []))
                source = "snapshot" if snap else "close"
                dealer = _dealer_payload(day, snap, history[-1]["close"], source, chain)
                status[(s, day)] = dealer["status"]
            rows.append((snapshot_time(day), ids[s], Jsonb(_ta(history)), Jsonb(_price_metrics(history)),
                         _at(day, 6, 30), "a2-1", Jsonb(dealer) if dealer else None,
                         _at(day, 7) if dealer else None, "a3-1" if dealer else None, snap))
    _insert(cur, "daily_snapshots", "time, ticker_id, technical_indicators_json, price_metrics_json, "
            "ta_computed_at, ta_version, dealer_metrics_json, dealer_computed_at, dealer_version, "
            "dealer_snapshot_time", rows)
    return len(rows), status


def hydrate(conn: psycopg.Connection[Any]) -> Hydrated:
    """Insert the data set described in the module docstring into a rebuilt, empty database."""
    bars = _bars()
    ids = {s: ticker_id(s) for s in [*TICKERS, INACTIVE_TICKER]}
    with conn.transaction(), conn.cursor() as cur:
        _reference(cur, ids)
        _ohlcv(cur, ids, bars)
        chains, options_rows = _options(cur, ids, bars)
        snapshot_rows, dealer_status = _snapshots(cur, ids, bars, chains)
    return Hydrated(tickers=len(ids), watchlist_rows=len(WATCHLIST_ACTIVE) + 1,
                    ohlcv_rows=sum(len(b) for b in bars.values()), options_rows=options_rows,
                    snapshot_rows=snapshot_rows, dealer_status=dealer_status)


@contextmanager
def hydrated_database(new_rebuilt_db: NewRebuiltDb, label: str) -> Iterator[str]:
    """A scratch database, rebuilt and hydrated, dropped afterwards: for a module's read-only tests
    (``new_rebuilt_db`` is the fixture of that name)."""
    with new_rebuilt_db(label) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            hydrate(conn)
        yield url
