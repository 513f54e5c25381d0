"""Parse and validate one day-aggregates flat file (CSV, gzip) into arrays ready for COPY.

Fast path: pandas' C parser with numeric inference; only a file that actually holds bad values
pays for the slower checks.  Every rejected row is counted by reason with a few samples naming
the line; rejected rows never block the good rows of the file.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kapman.errors import InputError

HEADER = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
NUMERIC = ("volume", "open", "close", "high", "low", "window_start", "transactions")
REQUIRED = ("ticker", "volume", "open", "close", "high", "low")
SAMPLES_PER_REASON = 3


@dataclass
class ParsedDay:
    """Accepted rows of one file, as aligned arrays."""

    symbols: np.ndarray          # object array of upper-case symbols
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    transactions: np.ndarray     # float64, NaN when absent
    rows_read: int = 0
    rejected: Counter = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, count: int, samples: list[str]) -> None:
        if count:
            self.rejected[reason] += count
            kept = self.samples.setdefault(reason, [])
            kept.extend(samples[: SAMPLES_PER_REASON - len(kept)])


def _decompress(data: bytes, key: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"not a valid gzip file ({exc})", source=key) from None


def _bad_field_count_lines(text: str) -> list[int]:
    """1-based line numbers whose field count is wrong (only scanned when pandas skipped some)."""
    bad = []
    for number, line in enumerate(text.splitlines(), start=1):
        if number > 1 and line.strip() and line.count(",") != len(HEADER) - 1:
            bad.append(number)
    return bad


def parse_day_file(data: bytes, key: str) -> ParsedDay:
    raw = _decompress(data, key)
    text_lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype={"ticker": str}, on_bad_lines="skip",
                            keep_default_na=False, na_values=[""], engine="c")
    except pd.errors.EmptyDataError:
        raise InputError("empty file (no header)", source=key) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable CSV ({exc})", source=key) from None
    missing_cols = [c for c in HEADER if c not in frame.columns]
    if missing_cols:
        raise InputError(f"header lacks {', '.join(missing_cols)} (expected {','.join(HEADER)})", source=key, line=1)

    blank = raw.count(b"\n\n")
    expected_rows = max(0, text_lines - 1 - blank)
    day = ParsedDay(*([np.empty(0)] * 7), rows_read=max(expected_rows, len(frame)))
    # Map frame rows to file line numbers (pandas dropped the malformed ones).
    malformed = day.rows_read - len(frame)
    line_no = np.arange(len(frame)) + 2
    if malformed > 0:
        bad_lines = _bad_field_count_lines(raw.decode("utf-8", "replace"))
        good = np.setdiff1d(np.arange(2, text_lines + 1), bad_lines)
        line_no = good[: len(frame)] if len(good) >= len(frame) else line_no
        day.reject("malformed", malformed, [f"line {n}: wrong number of fields" for n in bad_lines])

    ok = np.ones(len(frame), dtype=bool)

    def drop(mask: np.ndarray, reason: str, why: str) -> None:
        mask = mask & ok
        if mask.any():
            idx = np.flatnonzero(mask)
            samples = [f"line {line_no[i]}: {frame['ticker'].iat[i]} {why}" for i in idx[:SAMPLES_PER_REASON]]
            day.reject(reason, int(mask.sum()), samples)
            ok[mask] = False

    values: dict[str, np.ndarray] = {}
    for col in NUMERIC:
        series = frame[col]
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            coerced = pd.to_numeric(series, errors="coerce")
            drop((coerced.isna() & series.notna()).to_numpy(), "non_numeric", f"has a non-numeric {col}")
            series = coerced
        values[col] = series.to_numpy(dtype=np.float64, na_value=np.nan)
    tick = frame["ticker"]
    missing = tick.isna().to_numpy(copy=True)
    for col in REQUIRED[1:]:
        missing |= np.isnan(values[col])
    drop(missing, "missing_field", "lacks a required field")
    o, h, lo, c, v = (values[k] for k in ("open", "high", "low", "close", "volume"))
    with np.errstate(invalid="ignore"):
        drop((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "non_positive_price", "has a price <= 0")
        drop(h < lo, "high_below_low", "has high < low")
        drop((o < lo) | (o > h), "open_outside_range", "has open outside [low, high]")
        drop((c < lo) | (c > h), "close_outside_range", "has close outside [low, high]")
        drop(v < 0, "negative_volume", "has negative volume")
    symbols = tick.fillna("").str.strip().str.upper().to_numpy(dtype=object)
    # A symbol twice in one file: the last row wins (the merge key is (ticker, date)).
    dup = pd.Series(symbols).where(ok).duplicated(keep="last").to_numpy() & ok
    drop(dup, "duplicate_symbol", "appears again later in the file")

    keep = np.flatnonzero(ok)
    day.symbols, day.open, day.high, day.low, day.close = symbols[keep], o[keep], h[keep], lo[keep], c[keep]
    day.volume, day.transactions = v[keep], values["transactions"][keep]
    return day
