"""Day-aggregate flat files: key layout, CSV rendering and optional deliberately bad rows."""

from __future__ import annotations

import gzip
from datetime import date, datetime, time

import numpy as np
import pandas as pd

from kapman.clock import NEW_YORK

PREFIX = "us_stocks_sip/day_aggs_v1"
HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
#: Bad rows per day when asked: malformed lines, a high < low row, a negative volume, unknown tickers.
MALFORMED_ROWS = 2
UNKNOWN_SYMBOL_ROWS = 2


def key(day: date, prefix: str = PREFIX) -> str:
    return f"{prefix}/{day:%Y/%m}/{day.isoformat()}.csv.gz"


def window_start_ns(day: date) -> int:
    """Unix nanoseconds at 00:00 America/New_York of the trading day."""
    return int(datetime.combine(day, time(0), tzinfo=NEW_YORK).timestamp()) * 1_000_000_000


def _number(x: float) -> str:
    # Shortest round-trip repr: "12", "12.5", "1234.5678"; whole floats lose the ".0".
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def render_rows(bars: pd.DataFrame, day: date) -> list[str]:
    start = window_start_ns(day)
    cols = [bars[c].to_numpy() for c in ("ticker", "volume", "open", "close", "high", "low", "transactions")]
    return [
        f"{t},{_number(v)},{_number(o)},{_number(c)},{_number(h)},{_number(lo)},{start},{n}"
        for t, v, o, c, h, lo, n in zip(*cols, strict=True)
    ]


def corrupt(
    bars: pd.DataFrame, rows: list[str], day: date, rng: np.random.Generator, known: set[str]
) -> list[str]:
    """Rows with the defects ingestion must reject, at deterministic places in the file."""
    rows = list(rows)
    start = window_start_ns(day)
    if len(bars) >= 2:
        i, j = rng.choice(len(bars), size=2, replace=False)
        inverted = bars.iloc[[i]].assign(high=bars["low"].iloc[i] * 0.97, low=bars["high"].iloc[i])
        rows[i] = render_rows(inverted, day)[0]
        negative = bars.iloc[[j]].assign(volume=-bars["volume"].iloc[j])
        rows[j] = render_rows(negative, day)[0]
    extra = ["THIS IS NOT,A CSV ROW", f"{bars['ticker'].iloc[0] if len(bars) else 'X'},n/a,1,1,1,1,{start},1"]
    while len(extra) < MALFORMED_ROWS + UNKNOWN_SYMBOL_ROWS:
        symbol = "".join(rng.choice(list("QXZJ"), size=5))
        if symbol not in known:
            extra.append(f"{symbol},1000,10.0,10.5,10.8,9.9,{start},25")
    for line in extra:
        rows.insert(int(rng.integers(0, len(rows) + 1)), line)
    return rows


def gzip_csv(rows: list[str], mtime: int = 0) -> bytes:
    """Gzip with a fixed header timestamp so equal content gives equal bytes (and ETag)."""
    body = (HEADER + "\n" + "\n".join(rows) + ("\n" if rows else "")).encode()
    return gzip.compress(body, compresslevel=6, mtime=mtime)


def tamper(body: bytes, *, add_columns: dict[str, str] | None = None, drop_columns: list[str] | None = None,
           rows: dict[str, dict[str, str]] | None = None) -> bytes:
    """A day file (gzip CSV) hand-edited: columns added (every row gets the value) or dropped, and
    fields of the named symbols' rows set (``{"MSFT": {"close": "inf", "window_start": "..."}}``,
    values written as given)."""
    lines = gzip.decompress(body).decode().splitlines()
    names = lines[0].split(",")
    table = [line.split(",") for line in lines[1:] if line]
    for name, value in (add_columns or {}).items():
        names.append(name)
        for fields in table:
            fields.append(str(value))
    for symbol, changes in (rows or {}).items():
        for fields in table:
            if fields[0] == symbol:
                for name, value in changes.items():
                    fields[names.index(name)] = str(value)
    keep = [i for i, name in enumerate(names) if name not in set(drop_columns or ())]
    text = "\n".join(",".join(line[i] for i in keep) for line in [names, *table]) + "\n"
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)
