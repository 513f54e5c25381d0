"""Daily bars, vectorised over (days x tickers).

Every random draw is a hash of (seed, stream, symbol, calendar day), not a position in a random
stream, and prices are anchored at the market's end date and walked backwards.  So a symbol's
bar for a day is the same whatever date range, history length or universe size was generated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

_MASK = (1 << 64) - 1
_MARKET_KEY = 0x5350_5844_4D4B_5421  # the shared market factor's pseudo-symbol key
#: Annualisation for daily volatility.
TRADING_DAYS_PER_YEAR = 252
#: Volatility regimes last about a month (calendar days per regime block).
REGIME_DAYS = 30
_REGIME_LEVELS = np.array([0.6, 0.8, 0.9, 1.0, 1.1, 1.4, 2.0])
#: Trends change about once a quarter (calendar days per trend block).
TREND_DAYS = 91
#: Chance of an earnings-like overnight jump on a given day.
JUMP_PROBABILITY = 0.012
#: Chance a halt-eligible (synthetic) ticker has no bar on a given day.
HALT_PROBABILITY = 0.003


class Stream(IntEnum):
    MARKET = 1
    REGIME = 2
    TREND = 3
    GAP = 4
    JUMP = 5
    JUMP_SIZE = 6
    INTRADAY = 7
    HIGH = 8
    LOW = 9
    VWAP = 10
    VOLUME = 11
    TRADES = 12
    HALT = 13
    FRACTION = 14


def symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser; uint64 arrays wrap silently, which is what we want."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, stream: int, keys: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """(days x tickers) 64-bit hashes of (seed, stream, key, ordinal)."""
    salt = np.array([(seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03) & _MASK], dtype=np.uint64)
    day = _mix(np.asarray(ordinals, dtype=np.uint64).reshape(-1, 1) * np.uint64(0xA24BAED4963EE407) ^ salt)
    return _mix(day ^ np.asarray(keys, dtype=np.uint64).reshape(1, -1))


def uniform(seed: int, stream: int, keys: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """(days x tickers) uniforms in (0, 1), a pure function of each (seed, stream, key, ordinal)."""
    h = _hash(seed, stream, keys, ordinals)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def normal(seed: int, stream: int, keys: np.ndarray, ordinals: np.ndarray) -> np.ndarray:
    """Unit-variance, near-normal draws: the Irwin-Hall sum of four 16-bit lanes of one hash.

    Integer-only until the last step, so it is fast and bit-identical on every CPU; tails stop at
    about 3.5 sigma, and the jump process supplies the fat tails.
    """
    h = _hash(seed, stream, keys, ordinals)
    lane = np.uint64(0xFFFF)
    total = (h & lane) + ((h >> np.uint64(16)) & lane) + ((h >> np.uint64(32)) & lane) + (h >> np.uint64(48))
    return (total.astype(np.float64) - _LANES_MEAN) * _LANES_SCALE


_LANES_MEAN = 4 * 65535 / 2
_LANES_SCALE = 1.0 / np.sqrt(4 * (65536.0**2 - 1) / 12)


@dataclass(frozen=True)
class TickerParams:
    """Per-ticker constants, one array entry per symbol in universe order."""

    keys: np.ndarray  # uint64 symbol hashes
    end_price: np.ndarray  # close on the market's last trading day (split-adjusted)
    vol: np.ndarray  # annualised volatility
    beta: np.ndarray
    volume: np.ndarray  # typical daily shares
    trade_size: np.ndarray  # typical shares per trade
    fractional: np.ndarray  # bool: volume reported with a fractional part
    halts: np.ndarray  # bool: may have halted days
    last_ordinal: np.ndarray  # last day with a bar (delisting), huge when active
    split_ordinal: np.ndarray  # first day trading post-split, 0 when none
    split_ratio: np.ndarray


def daily_returns(
    seed: int, p: TickerParams, ordinals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(overnight gap, intraday return, daily sigma), each (days x tickers) log terms."""
    ords = np.asarray(ordinals, dtype=np.int64)
    market = 0.0105 * normal(seed, Stream.MARKET, np.array([_MARKET_KEY]), ords)
    levels = _REGIME_LEVELS[
        (uniform(seed, Stream.REGIME, p.keys, ords // REGIME_DAYS) * len(_REGIME_LEVELS)).astype(np.int64)
    ]
    sigma = p.vol / np.sqrt(TRADING_DAYS_PER_YEAR) * levels
    trend = 0.9 * p.vol / TRADING_DAYS_PER_YEAR * normal(seed, Stream.TREND, p.keys, ords // TREND_DAYS)
    jumps = (uniform(seed, Stream.JUMP, p.keys, ords) < JUMP_PROBABILITY) * (
        5.0 * sigma * normal(seed, Stream.JUMP_SIZE, p.keys, ords)
    )
    gap = 0.3 * sigma * normal(seed, Stream.GAP, p.keys, ords) + jumps
    intraday = p.beta * market + trend + 0.9 * sigma * normal(seed, Stream.INTRADAY, p.keys, ords)
    return gap, intraday, sigma


def log_closes(seed: int, p: TickerParams, ordinals: np.ndarray) -> np.ndarray:
    """Split-adjusted log closes for consecutive trading days ending on the market's last day."""
    gap, intraday, _ = daily_returns(seed, p, ordinals)
    total = gap + intraday
    # Walk back from the end: close[i] = end - sum of the returns of the days after i.
    after = np.cumsum(total[::-1], axis=0)[::-1] - total
    return np.log(p.end_price) - after


def _tick_round(x: np.ndarray) -> np.ndarray:
    """Cents at or above $1, hundredths of a cent below (monotone, so OHLC order survives)."""
    return np.maximum(np.where(x >= 1.0, np.round(x, 2), np.round(x, 4)), 0.0001)


def bars_block(
    seed: int, p: TickerParams, ordinals: np.ndarray, log_close: np.ndarray
) -> dict[str, np.ndarray]:
    """Unadjusted bars for the given days; ``present`` is False for halts and after delisting."""
    ords = np.asarray(ordinals, dtype=np.int64)
    gap, intraday, sigma = daily_returns(seed, p, ords)
    pre_split = ords.reshape(-1, 1) < p.split_ordinal
    factor = np.where(pre_split, p.split_ratio, 1.0)
    close = np.exp(log_close) * factor
    open_ = close * np.exp(-intraday)
    wick = 0.4 * sigma
    high = np.maximum(open_, close) * np.exp(wick * np.abs(normal(seed, Stream.HIGH, p.keys, ords)))
    low = np.minimum(open_, close) * np.exp(-wick * np.abs(normal(seed, Stream.LOW, p.keys, ords)))
    open_, high, low, close = (_tick_round(a) for a in (open_, high, low, close))
    mix = uniform(seed, Stream.VWAP, p.keys, ords)
    typical = (close + high + low) / 3.0
    vwap = np.clip(np.round(typical + (mix - 0.5) * 0.3 * (high - low), 4), low, high)
    # Volume rises with the size of the move, as it does on news days.
    surprise = np.abs(gap + intraday) / sigma
    volume = p.volume * np.exp(0.35 * normal(seed, Stream.VOLUME, p.keys, ords)) * (0.6 + 0.4 * surprise)
    volume = np.maximum(np.round(volume / factor), 1.0)
    frac = np.round(uniform(seed, Stream.FRACTION, p.keys, ords), 4)
    volume = np.where(p.fractional, volume + frac, volume)
    trades = np.maximum(
        np.round(volume / p.trade_size * np.exp(0.2 * normal(seed, Stream.TRADES, p.keys, ords))), 1
    ).astype(np.int64)
    halted = p.halts & (uniform(seed, Stream.HALT, p.keys, ords) < HALT_PROBABILITY)
    present = ~halted & (ords.reshape(-1, 1) <= p.last_ordinal)
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": vwap,
        "transactions": trades,
        "present": present,
        "split_factor": factor,
    }
