"""Option chain snapshots in ``/v3/snapshot/options/{underlying}`` result format.

A chain is a pure function of (seed, underlying, as-of instant, spot): weekly and monthly
expirations out to about a year, strikes around spot, Black-Scholes prices and greeks from a
volatility smile.  It carries the vendor's rough edges: contracts without greeks or IV, an
adjusted contract (non-100 deliverable) colliding with a standard one, a ``contract_type: other``,
quotes of untraded far strikes left from earlier sessions (stale).
The profile (``kapman.sandbox.profiles``) decides the shapes that depend on the plan and on how the
vendor serialises numbers.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np

from kapman.calendar import is_trading_day, previous_trading_day
from kapman.clock import close_of, ny_date_of
from kapman.sandbox.blackscholes import price_and_greeks
from kapman.sandbox.profiles import TIDY, Profile

#: Weekly expirations listed ahead (plus monthlies out to a year).
WEEKLIES = 8
MONTHS_AHEAD = 12
#: Share of contracts published without greeks and IV (besides the deep in-the-money ones).
NO_GREEKS_SHARE = 0.02
#: |delta| beyond which the vendor leaves greeks empty.
DEEP_ITM_DELTA = 0.985
_SECONDS_PER_YEAR = 365.0 * 24 * 3600


def rng_for(*parts: object) -> np.random.Generator:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _session_day(day: date) -> date:
    """Expirations on a holiday move to the previous trading day (Good Friday -> Thursday)."""
    return day if is_trading_day(day) else previous_trading_day(day)


def expirations(as_of: datetime) -> list[date]:
    """Weekly Fridays for the next few weeks and third Fridays out to a year, after ``as_of``."""
    today = ny_date_of(as_of)
    first_friday = today + timedelta(days=(4 - today.weekday()) % 7 or 7)
    days = {_session_day(first_friday + timedelta(weeks=i)) for i in range(WEEKLIES)}
    for m in range(MONTHS_AHEAD + 1):
        year, month = today.year + (today.month - 1 + m) // 12, (today.month - 1 + m) % 12 + 1
        first = date(year, month, 1)
        third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
        days.add(_session_day(third_friday))
    horizon = today + timedelta(days=370)
    return sorted(d for d in days if today < d <= horizon)


def year_fraction(as_of: datetime, expiration: date) -> float:
    """Time to expiry in years, to the 16:00 New York close of the expiration date."""
    return max((close_of(expiration) - as_of).total_seconds(), 60.0) / _SECONDS_PER_YEAR


def strike_step(spot: float) -> float:
    for limit, step in ((5, 0.5), (25, 1.0), (100, 2.5), (250, 5.0), (1000, 10.0)):
        if spot < limit:
            return step
    return 50.0


def occ_ticker(root: str, expiration: date, kind: str, strike: float) -> str:
    return f"O:{root}{expiration:%y%m%d}{kind}{round(strike * 1000):08d}"


def _ns(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000_000 + instant.microsecond * 1000


def _grid(spot: float, expiries: list[date], as_of: datetime, per_expiry: int) -> list[tuple[date, float]]:
    base = strike_step(spot)
    center = round(spot / base) * base
    out: list[tuple[date, float]] = []
    for expiry in expiries:
        t = year_fraction(as_of, expiry)
        step = base * (1 if t < 0.1 else 2 if t < 0.4 else 4)  # wider grids further out
        # Centred on spot, but shifted up rather than running into zero on deep chains.
        lowest = max(-(per_expiry // 2), 1 - math.ceil(center / step))
        out.extend((expiry, round(center + step * k, 2)) for k in range(lowest, lowest + per_expiry))
    return out


def _whole(value: float) -> float | int:
    """A whole number as a JSON integer, as the API writes ``150`` and ``"delta": 1``."""
    return int(value) if float(value).is_integer() else value


def option_chain(
    seed: int,
    underlying: str,
    spot: float,
    vol: float,
    as_of: datetime,
    contracts: int,
    *,
    quirks: bool,
    profile: Profile = TIDY,
) -> list[dict]:
    """About ``contracts`` snapshot results (calls and puts), plus the quirky extras when asked."""
    rng = rng_for(seed, "chain", underlying, _ns(as_of))
    as_of = as_of.astimezone(UTC)
    expiries = expirations(as_of)
    per_expiry = max(2, math.ceil(contracts / (2 * len(expiries))))
    grid = _grid(spot, expiries, as_of, per_expiry)
    n = len(grid)
    expiry = [e for e, _ in grid] * 2
    strike = np.array([s for _, s in grid] * 2)
    is_call = np.repeat([True, False], n)
    t = np.array([year_fraction(as_of, e) for e in expiry])
    moneyness = np.log(strike / spot) / np.sqrt(t)
    # Smile: put-side skew plus curvature, richer term premium at the front.
    atm = vol * (1.0 + 0.15 * np.exp(-6.0 * t))
    iv = np.round(np.clip(atm * (1.0 - 0.22 * moneyness + 0.30 * moneyness**2), 0.05, profile.chain_iv_cap), 6)
    g = price_and_greeks(is_call, spot, strike, t, iv)
    no_greeks = (np.abs(g["delta"]) > DEEP_ITM_DELTA) | (rng.random(2 * n) < NO_GREEKS_SHARE)
    oi = np.round(
        4000
        * np.sqrt(contracts / 300)
        * np.exp(-0.5 * moneyness**2)
        * rng.lognormal(0, 0.7, 2 * n)
        / (1 + 4 * t)
    ).astype(np.int64)
    volume = np.round(oi * rng.uniform(0, 0.4, 2 * n) * (rng.random(2 * n) > 0.2)).astype(np.int64)
    day_move = rng.normal(0, 0.08, 2 * n).tolist()
    stamp = _ns(as_of) - 1_000_000_000 * rng.integers(1, 900, 2 * n)
    quote_stamp = _stale_quotes(seed, underlying, as_of, stamp, volume, moneyness)
    root = underlying.replace(".", "")
    # Plain Python values, once: indexing numpy arrays element by element costs more than the rest
    # of a contract's work.
    calls, strikes, volumes, ois, stamps, quote_stamps = (
        a.tolist() for a in (is_call, strike, volume, oi, stamp, quote_stamp))
    prices, deltas, ivs, missing_greeks = g["price"].tolist(), g["delta"].tolist(), iv.tolist(), no_greeks.tolist()
    greeks = {name: g[name].tolist() for name in ("delta", "gamma", "theta", "vega")}
    as_of_ns = _ns(as_of)
    results = []
    for i in range(2 * n):
        kind = "call" if calls[i] else "put"
        price = max(round(prices[i], 2), 0.01)
        half_spread = max(0.01, round(0.02 * price + 0.01, 2))
        bid, ask = max(round(price - half_spread, 2), 0.0), round(price + half_spread, 2)
        mid = round((bid + ask) / 2, 4)
        prev = max(round(price / (1 + day_move[i]), 2), 0.01)
        traded = volumes[i] > 0
        k = strikes[i]
        shown_strike = _whole(k) if profile.chain_integers else k
        break_even = round(k + mid if calls[i] else k - mid, 4)
        result: dict = {
            "break_even_price": break_even,
            "day": {
                "change": round(price - prev, 2) if traded else 0.0,
                "change_percent": round((price - prev) / prev * 100, 2) if traded else 0.0,
                "close": price if traded else prev,
                "high": round(max(price, prev) * 1.04, 2) if traded else prev,
                "last_updated": stamps[i],
                "low": round(min(price, prev) * 0.96, 2) if traded else prev,
                "open": prev,
                "previous_close": prev,
                "volume": volumes[i],
                "vwap": round((price + prev) / 2, 4) if traded else prev,
            },
            "details": {
                "contract_type": kind,
                "exercise_style": "american",
                "expiration_date": expiry[i].isoformat(),
                "shares_per_contract": 100,
                "strike_price": shown_strike,
                "ticker": occ_ticker(root, expiry[i], kind[0].upper(), k),
            },
            "last_quote": {
                "ask": ask,
                "ask_exchange": 316,
                "ask_size": int(rng.integers(1, 200)),
                "bid": bid,
                "bid_exchange": 303,
                "bid_size": int(rng.integers(1, 200)),
                "last_updated": quote_stamps[i],
                "midpoint": mid,
                "timeframe": "REAL-TIME",
            },
            "open_interest": ois[i],
            "underlying_asset": {
                "change_to_break_even": round(break_even - spot, 4),
                "last_updated": as_of_ns,
                "price": spot,
                "ticker": underlying,
                "timeframe": "REAL-TIME",
            },
        }
        if traded:
            result["last_trade"] = {
                "conditions": [209],
                "exchange": 65,
                "price": round(min(max(price, bid), ask), 2),
                "sip_timestamp": stamps[i],
                "size": int(rng.integers(1, 50)),
                "timeframe": "REAL-TIME",
            }
        elif profile.chain_empty_objects:
            result["day"], result["last_trade"] = {}, {}
        deep = abs(deltas[i]) > DEEP_ITM_DELTA
        if not missing_greeks[i]:
            result["greeks"] = {name: values[i] for name, values in greeks.items()}
            result["implied_volatility"] = ivs[i]
        elif deep and profile.chain_integers and i % 2 == 0:
            # Deep in the money the vendor also rounds the greeks to whole numbers.
            result["greeks"] = {"delta": 1 if calls[i] else -1, "gamma": 0, "theta": 0, "vega": 0}
            result["implied_volatility"] = ivs[i]
        elif deep or profile.chain_empty_objects:
            result["greeks"] = {}  # the vendor's "no greeks" for deep in-the-money contracts
        if not profile.chain_quotes:
            del result["last_quote"]
        if not profile.chain_underlying_price:
            asset = result["underlying_asset"]
            del asset["price"], asset["change_to_break_even"]
        if profile.chain_fmv:
            result["fmv"] = price
            result["fmv_last_updated"] = stamps[i]
        results.append(result)
    if quirks and results:
        results.extend(_quirky_contracts(results, root, spot))
    return results


#: Untraded contracts this far from the money (|log(K/S)| / sqrt(t)) keep a quote from an earlier
#: session, as illiquid real ones do (one eight months old looks current unless its time is kept).
STALE_MONEYNESS = 1.2


def _stale_quotes(seed: int, underlying: str, as_of: datetime, stamp: np.ndarray, volume: np.ndarray,
                  moneyness: np.ndarray) -> np.ndarray:
    """Each contract's quote time: the session's, or 1 to 240 days earlier for untraded far strikes."""
    stale = (volume == 0) & (np.abs(moneyness) > STALE_MONEYNESS)
    days = rng_for(seed, "stale", underlying, _ns(as_of)).integers(1, 241, len(stamp))
    return np.where(stale, stamp - days * 86_400 * 1_000_000_000, stamp)


def adjusted_after_split(results: list[dict], root: str, spot: float, split_from: float,
                         split_to: float) -> list[dict]:
    """The call and put a reverse split left behind (GE after its 1-for-8): listed before the split,
    they keep their strike, near the old price, and deliver 100 * split_to / split_from shares of
    today's stock; their open interest is large.  Root ``<root>1``; no greeks (the vendor's are
    meaningless for them)."""
    calls = [r for r in results if r["details"]["contract_type"] == "call"]
    if not calls or split_from <= split_to:
        return []
    expiry = min(r["details"]["expiration_date"] for r in calls)
    strike = max(round(spot * split_to / split_from), 1)
    shares = int(100 * split_to // split_from)
    out = []
    for kind, oi in (("call", 50_000), ("put", 30_000)):
        src = next(r for r in results if r["details"]["contract_type"] == kind
                   and r["details"]["expiration_date"] == expiry)
        contract = {**src, "details": {**src["details"], "shares_per_contract": shares, "strike_price": strike,
                                       "ticker": occ_ticker(root + "1", date.fromisoformat(expiry),
                                                            kind[0].upper(), strike)},
                    "greeks": {}, "open_interest": oi}
        contract.pop("implied_volatility", None)
        out.append(contract)
    return out


def _quirky_contracts(results: list[dict], root: str, spot: float) -> list[dict]:
    """An adjusted call (deliverable 150 shares after a 3:2 split) at the same (expiration, strike)
    as a standard call, and one contract of type ``other``."""
    calls = [r for r in results if r["details"]["contract_type"] == "call"]
    standard = min(
        calls, key=lambda r: (r["details"]["expiration_date"], abs(r["details"]["strike_price"] - spot))
    )
    d = standard["details"]
    expiry = date.fromisoformat(d["expiration_date"])
    adjusted = {
        **standard,
        "details": {
            **d,
            "shares_per_contract": 150,
            "ticker": occ_ticker(root + "1", expiry, "C", d["strike_price"]),
        },
        "greeks": {},
        "open_interest": max(standard["open_interest"] // 20, 1),
    }
    adjusted.pop("implied_volatility", None)
    other_src = calls[len(calls) // 2]
    od = other_src["details"]
    other = {
        **other_src,
        "details": {
            **od,
            "contract_type": "other",
            "ticker": occ_ticker(
                root + "2", date.fromisoformat(od["expiration_date"]), "C", od["strike_price"]
            ),
        },
    }
    other.pop("greeks", None)
    other.pop("implied_volatility", None)
    return [adjusted, other]
