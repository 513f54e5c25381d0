"""Parse and validate one day-aggregates flat file (CSV, gzip) into arrays ready for COPY.

Fast path: pandas' C parser with numeric inference; only a file that actually holds bad values
pays for the slower checks.  Every rejected row is counted by reason with a few samples naming
the line; rejected rows never block the good rows of the file.

Columns are read by the header's names: an unknown extra column is noted and ignored, an
optional one (``window_start``, ``transactions``) may be absent (NULL), a missing required one
fails the file.  A sane bar (``_validate``): a symbol (``kapman.symbols.is_symbol``); open, high,
low and close finite, above 0 and at most ``MAX_PRICE``; high >= low and open and close within
[low, high]; a finite volume in 0..2**63-1; transactions absent or a whole number in that range; a
``window_start`` (when the file has one) within the file's New York day.  Anything else rejects
its row, counted and named.  Grouped daily's VWAP is optional: one that is not a finite number
within [low, high] (give or take ``VWAP_TOLERANCE``) is stored as NULL, and the file's notes say so.

Symbols are kept exactly as the file writes them (only surrounding blanks are dropped): tickers
are case-sensitive at the source, where a lower-case suffix marks a class (``AAp`` is a
preferred, not ``AAP``).  A symbol with two rows in one file is ambiguous: neither row is kept.
"""

from __future__ import annotations

import io
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

from kapman.clock import NEW_YORK
from kapman.errors import InputError
from kapman.symbols import MAX_LENGTH, SYMBOL, is_symbol

HEADER = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
NUMERIC = ("volume", "open", "close", "high", "low", "window_start", "transactions")
REQUIRED = ("ticker", "volume", "open", "close", "high", "low")
OPTIONAL = ("window_start", "transactions")
SAMPLES_PER_REASON = 3
#: Unknown columns a note names, at most.
COLUMNS_SHOWN = 10
#: The highest sane price: well above any listed share (Berkshire A trades below 10**6).
MAX_PRICE = 1e9
#: The first volume or trade count refused: bigint holds up to 2**63-1 (transactions is stored as
#: one), and no float64 lies between that and 2**63 (``float(2**63 - 1)`` *is* 2**63).
COUNT_LIMIT = 2.0**63
#: How far grouped daily's VWAP may lie outside [low, high], relative to the price: trades that
#: count towards the VWAP but not the day's range (odd lots, some conditions) may stray a little.
VWAP_TOLERANCE = 0.01
#: The largest day file read, decompressed: the whole market's day is about 1 MiB.
MAX_FILE_BYTES = 256 * 2**20
#: ``window_start``'s unit per source: nanoseconds in day files, milliseconds from grouped daily.
NS, MS = 1, 1_000_000


@dataclass
class ParsedDay:
    """Accepted rows of one file, as aligned arrays."""

    symbols: np.ndarray          # object array of symbols, exactly as in the file
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    transactions: np.ndarray     # float64, NaN when absent
    #: float64, NaN when absent: grouped daily's ``vw``; the day files have no VWAP column.
    vwap: np.ndarray = field(default_factory=lambda: np.empty(0))
    rows_read: int = 0
    notes: list[str] = field(default_factory=list)      # about the file, e.g. columns ignored
    refused: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))  # symbols of rejected rows
    rejected: Counter = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    ambiguous: list[str] = field(default_factory=list)   # symbols rejected for having two rows

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, count: int, samples: list[str]) -> None:
        if count:
            self.rejected[reason] += count
            kept = self.samples.setdefault(reason, [])
            kept.extend(samples[: SAMPLES_PER_REASON - len(kept)])


def _decompress(data: bytes, key: str) -> bytes:
    """The file's bytes (every gzip member); refused past ``MAX_FILE_BYTES``: a few KB of gzip can
    inflate to GBs, so no more than that is ever inflated."""
    chunks, size, rest = [], 0, data
    try:
        while rest:
            member = zlib.decompressobj(wbits=31)   # 31: a gzip header and trailer, CRC checked
            chunks.append(member.decompress(rest, MAX_FILE_BYTES + 1 - size))
            size += len(chunks[-1])
            if size > MAX_FILE_BYTES:
                raise InputError(f"decompresses to more than {MAX_FILE_BYTES // 2**20} MiB (a day file is "
                                 "about 1 MiB); not read", source=key)
            if not member.eof:
                raise EOFError("it ends before the end of its compressed stream")
            rest = member.unused_data
    except (EOFError, zlib.error) as exc:
        raise InputError(f"not a valid gzip file ({exc})", source=key) from None
    return b"".join(chunks)


def _line_layout(raw: bytes, fields: int) -> tuple[np.ndarray, np.ndarray]:
    """(0-based indices of data lines with the wrong field count, 1-based numbers of good data lines).

    Counted on the raw bytes with numpy (commas per line), so a clean file costs a few
    vector operations; blank lines are neither.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        ends = np.append(ends, len(buf))
    # a line's commas: those before its end less those before its start (each line starts right
    # after the previous end, so one count per end serves both)
    before_end = np.searchsorted(np.flatnonzero(buf == 44), ends)
    commas = np.diff(before_end, prepend=0)
    lengths = ends - np.concatenate(([0], ends[:-1] + 1))
    blank = lengths - (buf[np.maximum(ends - 1, 0)] == 13) <= 0
    data = np.arange(len(ends)) >= 1
    bad = data & ~blank & (commas != fields - 1)
    good = data & ~blank & ~bad
    return np.flatnonzero(bad), np.flatnonzero(good) + 1


def _header(raw: bytes, key: str) -> list[str]:
    """The file's column names; fails the file when a required one is missing or one repeats."""
    first = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not first.strip():
        raise InputError("empty file (no header)", source=key)
    # Names as a hand-edited mirror may write them: a BOM, quotes, another case.
    names = [n.strip().strip('"').strip().lower() for n in first.decode("utf-8-sig", "replace").split(",")]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InputError(f"header lacks the required column(s) {', '.join(missing)} "
                         f"(required: {','.join(REQUIRED)}; optional: {','.join(OPTIONAL)})", source=key, line=1)
    repeated = sorted({n for n in names if n in HEADER and names.count(n) > 1})
    if repeated:
        raise InputError(f"header repeats the column(s) {', '.join(repeated)}", source=key, line=1)
    return names


def parse_day_file(data: bytes, key: str, day: date | None = None) -> ParsedDay:
    """The rows of a day file; ``day``: the file's trading day, which every ``window_start`` must fall on."""
    raw = _decompress(data, key)
    names = _header(raw, key)
    bad_lines, line_no = _line_layout(raw, len(names))
    known = [n for n in names if n in HEADER]
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype={"ticker": str}, skiprows=bad_lines.tolist() or None,
                            keep_default_na=False, na_values=[""], engine="c", header=0,
                            encoding_errors="replace",  # a byte that is not UTF-8 rejects its row, not the file
                            names=[n if n in HEADER else f"_extra{i}" for i, n in enumerate(names)],
                            usecols=known if len(known) < len(names) else None)
    except pd.errors.EmptyDataError:
        raise InputError("empty file (no header)", source=key) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"unreadable CSV ({exc})", source=key) from None
    if len(frame) != len(line_no):
        raise InputError(f"parsed {len(frame)} rows from {len(line_no)} data lines (quoted newlines?)", source=key)
    for col in OPTIONAL:
        if col not in frame.columns:
            frame[col] = np.nan

    day_rows = _validate(frame, line_no, rows_read=len(line_no) + len(bad_lines), where="line",
                         trading_day=day, unit=NS)
    day_rows.reject("malformed", len(bad_lines),
                    [f"line {n + 1}: wrong number of fields"
                     for n in bad_lines[:SAMPLES_PER_REASON]])
    extra = [_column(n) for n in names if n not in HEADER]
    if extra:
        more = f" and {len(extra) - COLUMNS_SHOWN} more" if len(extra) > COLUMNS_SHOWN else ""
        day_rows.notes.append(f"{key}: column(s) {', '.join(extra[:COLUMNS_SHOWN])}{more} not known; ignored")
    absent = [c for c in OPTIONAL if c not in names]
    if absent:
        day_rows.notes.append(f"{key}: no {', '.join(absent)} column; stored as NULL")
    return day_rows


#: Grouped-daily result fields -> day-file columns (``t`` is the session's end, not its start).
GROUPED_FIELDS = {"T": "ticker", "v": "volume", "o": "open", "c": "close", "h": "high", "l": "low",
                  "t": "window_start", "n": "transactions", "vw": "vwap"}


def parse_grouped(results: list[dict], key: str, day: date | None = None) -> ParsedDay:
    """The ``results`` of ``/v2/aggs/grouped/.../{date}`` as a day file's rows, validated the same way
    (samples name the result's 1-based position; a result that is not an object is a malformed row)."""
    if not isinstance(results, list):
        raise InputError("grouped-daily results are not a list", source=key)
    objects = [i for i, r in enumerate(results) if isinstance(r, dict)]
    frame = pd.DataFrame({col: pd.Series([_grouped_value(f, results[i].get(f)) for i in objects], dtype=object)
                          for f, col in GROUPED_FIELDS.items()})
    frame = frame.infer_objects()    # whole columns of numbers take the fast path, as a file's do
    parsed = _validate(frame, np.array(objects, dtype=np.int64) + 1, rows_read=len(results), where="result",
                       trading_day=day, unit=MS, key=key)
    odd = [i + 1 for i, r in enumerate(results) if not isinstance(r, dict)]
    parsed.reject("malformed", len(odd), [f"result {n}: not an object" for n in odd[:SAMPLES_PER_REASON]])
    return parsed


def _grouped_value(name: str, value: object) -> object:
    """A result's field as the frame holds it: a ticker only as a string; a boolean is not a
    number (JSON ``true`` would read as 1), so it is kept as text, which the checks refuse."""
    if name == "T":
        return value if isinstance(value, str) else None
    return str(value).lower() if isinstance(value, bool) else value


def day_bounds(day: date, unit: int) -> tuple[float, float]:
    """[start, end) of ``day`` in New York, in ``window_start``'s unit since the epoch."""
    start = datetime.combine(day, time(0), tzinfo=NEW_YORK)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK)
    per_second = 1e9 / unit
    return start.timestamp() * per_second, end.timestamp() * per_second


def _validate(frame: pd.DataFrame, line_no: np.ndarray, *, rows_read: int, where: str,
              trading_day: date | None = None, unit: int = NS, key: str = "") -> ParsedDay:
    """Check every row of a frame with the day file's columns; keep the good ones as arrays.

    Every check is one vector operation over a column, so a clean file pays a few passes."""
    empty = np.empty(0)
    day = ParsedDay(empty, empty, empty, empty, empty, empty, empty, rows_read=rows_read)
    ok = np.ones(len(frame), dtype=bool)

    def drop(mask: np.ndarray, reason: str, why: str) -> None:
        mask = mask & ok
        if mask.any():
            idx = np.flatnonzero(mask)
            samples = [f"{where} {line_no[i]}: {_shown(frame['ticker'].iat[i])} {why}"
                       for i in idx[:SAMPLES_PER_REASON]]
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
    symbols, valid = _symbols(frame["ticker"])
    missing = symbols == ""
    for col in REQUIRED[1:]:
        missing |= np.isnan(values[col])
    drop(missing, "missing_field", "lacks a required field")
    drop(~valid, "bad_symbol", "is not a symbol (a letter, then letters, digits or '.', at most 20; "
                               "or an index's I: before one)")
    o, h, lo, c, v = (values[k] for k in ("open", "high", "low", "close", "volume"))
    tx, start = values["transactions"], values["window_start"]
    with np.errstate(invalid="ignore"):
        finite = ("open", "high", "low", "close", "volume", "transactions", "window_start")
        for col in finite:
            inf = np.isinf(values[col])
            if inf.any():
                drop(inf, "non_finite", f"has {col} that is not finite")
        drop((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "non_positive_price", "has a price <= 0")
        drop((o > MAX_PRICE) | (h > MAX_PRICE) | (lo > MAX_PRICE) | (c > MAX_PRICE), "price_out_of_range",
             f"has a price above {MAX_PRICE:g}")
        drop(h < lo, "high_below_low", "has high < low")
        drop((o < lo) | (o > h), "open_outside_range", "has open outside [low, high]")
        drop((c < lo) | (c > h), "close_outside_range", "has close outside [low, high]")
        drop(v < 0, "negative_volume", "has negative volume")
        drop(v >= COUNT_LIMIT, "volume_out_of_range", "has volume above 2**63-1")
        drop((tx < 0) | (tx >= COUNT_LIMIT) | (tx != np.floor(tx)) & ~np.isnan(tx), "bad_transactions",
             "has transactions that are not a whole number in 0..2**63-1")
        if trading_day is not None:
            first, end = day_bounds(trading_day, unit)
            drop((start < first) | (start >= end), "other_day",
                 f"has a window_start outside the file's day {trading_day} (New York)")
    _drop_ambiguous(day, symbols, valid, ok, line_no, values, where)

    keep = np.flatnonzero(ok)
    if not ok.all():
        day.refused = np.unique(symbols[~ok & valid]).astype(object)
    day.symbols, day.open, day.high, day.low, day.close = symbols[keep], o[keep], h[keep], lo[keep], c[keep]
    day.volume, day.transactions = v[keep], values["transactions"][keep]
    vwap, odd = _vwap(frame, lo, h)
    day.vwap = vwap[keep]
    odd_kept = np.flatnonzero(odd & ok)
    if len(odd_kept):
        shown = "; ".join(f"{where} {line_no[i]}: {symbols[i]} vw={_given(frame['vwap'].iat[i])} "
                          f"l={lo[i]:g} h={h[i]:g}" for i in odd_kept[:SAMPLES_PER_REASON])
        day.notes.append(f"{key}: {len(odd_kept)} {where}(s) with a vwap that is not a number within [low, high] "
                         f"(±{VWAP_TOLERANCE:.0%} of the price): stored as NULL (e.g. {shown})")
    return day


def _symbols(tickers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(each row's ticker stripped, "" where there is none; whether it is a symbol), as
    ``kapman.symbols.is_symbol`` says, over the whole column at once: a file's tickers are an Arrow
    column, which a per-row Python loop would read ten times slower than the rest of the checks."""
    text = tickers.str.strip()   # NaN where the row has no string
    valid = text.str.fullmatch(SYMBOL.pattern) & (text.str.len() <= MAX_LENGTH)
    return text.fillna("").to_numpy(dtype=object), valid.fillna(False).to_numpy(dtype=bool)


def _shown(ticker: object) -> str:
    """A row's ticker as a sample shows it: as written when it is a symbol, else escaped and cut
    (a NUL or a 10 MB field must not reach a report or the run ledger's JSON as it is)."""
    if not isinstance(ticker, str) or is_symbol(ticker.strip()):
        return str(ticker)
    return ascii(ticker[:30]) + ("..." if len(ticker) > 30 else "")


def _column(name: str) -> str:
    """An unknown column's name as a note shows it: as written when short and printable, else
    escaped and cut (a header is the file's text: an escape sequence must not reach a terminal)."""
    if not name:
        return "(unnamed)"
    return name if name.isprintable() and len(name) <= 30 else ascii(name[:30]) + ("..." if len(name) > 30 else "")


def _given(value: object) -> str:
    """A vendor value as a note shows it: a float as a number, anything else as its repr, cut."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return f"{value!r:.40}"


def _vwap(frame: pd.DataFrame, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the optional ``vwap`` column as float64, rows whose vwap was given but is not kept).

    NaN where absent, not a number, not finite, not positive, or outside [low, high] by more
    than ``VWAP_TOLERANCE`` of the price: a VWAP the bar itself contradicts is no VWAP."""
    if "vwap" not in frame.columns:
        return np.full(len(frame), np.nan), np.zeros(len(frame), dtype=bool)
    given = frame["vwap"].notna().to_numpy()
    vw = pd.to_numeric(frame["vwap"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        sane = np.isfinite(vw) & (vw > 0) & (vw >= low * (1 - VWAP_TOLERANCE)) & (vw <= high * (1 + VWAP_TOLERANCE))
    return np.where(sane, vw, np.nan), given & ~sane


def _row_text(values: dict[str, np.ndarray], i: int) -> str:
    o, h, lo, c, v = (values[k][i] for k in ("open", "high", "low", "close", "volume"))
    return f"o={o:g} h={h:g} l={lo:g} c={c:g} v={v:g}"


def _drop_ambiguous(day: ParsedDay, symbols: np.ndarray, valid: np.ndarray, ok: np.ndarray, line_no: np.ndarray,
                    values: dict[str, np.ndarray], where: str) -> None:
    """Reject the rows of a symbol that has more than one row in the file.

    Which row is right cannot be told from the file, so none is stored (rows already rejected for
    another reason keep that reason); the sample shows both rows, lines and values, so the
    vendor's mistake can be reported.  Case matters: AAP and AAp are different symbols.  Only
    ``valid`` symbols are grouped: what is not a symbol is rejected as such, never named here.
    """
    names = symbols[valid]
    if len(set(names.tolist())) == len(names):   # the usual file: a set is a fifth of a hashed duplicated()
        return
    named = pd.Series(symbols).where(valid)
    repeated = (named.duplicated(keep=False) & named.notna()).to_numpy()
    if not repeated.any():
        return
    groups: dict[str, list[int]] = {}
    for i in np.flatnonzero(repeated).tolist():
        groups.setdefault(symbols[i], []).append(i)
    idx = np.flatnonzero(repeated & ok)
    samples = []
    for symbol, rows in list(groups.items())[:SAMPLES_PER_REASON]:
        shown = "; ".join(f"{where} {line_no[i]} {_row_text(values, i)}" for i in rows[:2])
        more = f" (+{len(rows) - 2} more)" if len(rows) > 2 else ""
        samples.append(f"{symbol} appears {len(rows)} times, none kept: {shown}{more}")
    day.reject("duplicate_symbol", len(idx), samples)
    day.ambiguous.extend(groups)
    ok[idx] = False
