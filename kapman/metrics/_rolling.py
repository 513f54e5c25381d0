"""Vectorised rolling-window and recursive primitives over (T, N) panels.

Every function takes float64 arrays shaped (T bars, N tickers), oldest bar first, and returns a new
array of the same shape. Row t of an output depends only on rows 0..t of the inputs (causal), and a
NaN input only affects the outputs whose window contains it; recursive smoothers restart (re-seed)
once a full clean window follows the NaN.
"""

from __future__ import annotations

import numpy as np

NAN = np.nan


def empty_like(x: np.ndarray) -> np.ndarray:
    return np.full(x.shape, NAN, dtype=np.float64)


def shift(x: np.ndarray, k: int = 1) -> np.ndarray:
    """x[t - k] at row t; NaN for the first k rows."""
    out = empty_like(x)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def diff(x: np.ndarray, k: int = 1) -> np.ndarray:
    """x[t] - x[t - k]."""
    out = empty_like(x)
    if k < x.shape[0]:
        np.subtract(x[k:], x[:-k], out=out[k:])
    return out


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 or either side is NaN (never inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.divide(num, den)
    np.copyto(out, NAN, where=den == 0)
    return out


def first_valid(x: np.ndarray) -> np.ndarray:
    """Per column, the first finite value (0 for an all-NaN column)."""
    finite = np.isfinite(x)
    idx = finite.argmax(axis=0)
    vals = x[idx, np.arange(x.shape[1])]
    return np.where(finite.any(axis=0), vals, 0.0)


# Rows scanned for a centring value: covers every warm-up NaN prefix of a derived series.
_CENTER_SCAN = 256


def _center(x: np.ndarray) -> np.ndarray:
    """A typical value per column to subtract before cumulating (its first finite value near the top,
    else 0). Only precision depends on it, and it makes a constant column sum to exactly 0."""
    finite_rows = np.flatnonzero(np.isfinite(x[:_CENTER_SCAN]).any(axis=1))
    if finite_rows.size == 0:
        return np.zeros(x.shape[1:])
    c = x[finite_rows[0]].copy()
    for t in finite_rows[1:]:
        missing = np.isnan(c)
        if not missing.any():
            break
        c[missing] = x[t][missing]
    c[np.isnan(c)] = 0.0
    return c


# Rows per group in cumsum0: about sqrt(T) for T of a few hundred bars.
_SCAN_GROUP = 16


def cumsum0(x: np.ndarray) -> np.ndarray:
    """Cumulative sum down the rows with a leading zero row (shape T+1).

    np.cumsum(axis=0) walks each column with a large stride and is slow on a C-ordered panel, and a
    plain row loop is dominated by call overhead; instead rows are cumulated inside groups of
    _SCAN_GROUP rows (one vector op per position, over all groups at once), then the group totals are
    carried forward. The order of additions per column does not depend on the number of columns.
    """
    t_len = x.shape[0]
    g = _SCAN_GROUP
    n_groups = -(-t_len // g)
    buf = np.empty((n_groups * g + 1,) + x.shape[1:], dtype=x.dtype)
    buf[0] = 0
    buf[1 : t_len + 1] = x
    buf[t_len + 1 :] = 0
    grp = buf[1:].reshape((n_groups, g) + x.shape[1:])
    for k in range(1, g):
        grp[:, k] += grp[:, k - 1]
    for i in range(1, n_groups):
        grp[i] += grp[i - 1, g - 1]
    return buf[: t_len + 1]


def window_any(mask: np.ndarray, n: int) -> np.ndarray:
    """For rows n-1..T-1: does the n-row window ending there hold a True? (doubling, like Extrema)"""
    cur = mask
    span = 1
    while span * 2 <= n:
        nxt = cur.copy()
        nxt[span:] |= cur[:-span]
        cur, span = nxt, span * 2
    rest = n - span
    if rest:
        nxt = cur.copy()
        nxt[rest:] |= cur[:-rest]
        cur = nxt
    return cur[n - 1 :]


def _window_sums(x: np.ndarray, n: int, squares: bool = False):
    """Centred rolling sums via cumulative sums, for rows n-1..T-1.

    Subtracting a per-column centre before cumulating keeps the cumulative sums small, so the
    window differences lose little precision. Windows of identical values (a halt, a run of zero
    volume) are flagged so callers can report their exact sum / mean / zero variance instead of
    rounding residue. Returns (s1, s2 or None, center, bad, flat); bad marks windows with a NaN.
    """
    center = _center(x)
    nan = np.isnan(x)
    z = x - center
    has_nan = nan.any()
    if has_nan:
        z[nan] = 0.0
    cs = cumsum0(z)
    s1 = cs[n:] - cs[:-n]
    s2 = None
    if squares:
        np.multiply(z, z, out=z)
        cs = cumsum0(z)
        s2 = cs[n:] - cs[:-n]
    bad = window_any(nan, n) if has_nan else None
    moved = np.ones(x.shape, dtype=bool)
    np.not_equal(x[1:], x[:-1], out=moved[1:])
    # the n - 1 changes inside the window ending at t sit on rows t-n+2..t
    flat = ~window_any(moved, n - 1)[1:] if n > 1 else np.ones(s1.shape, dtype=bool)
    return s1, s2, center, bad, flat


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    out = empty_like(x)
    if x.shape[0] < n:
        return out
    s1, _, center, bad, flat = _window_sums(x, n)
    s1 += n * center
    np.copyto(s1, n * x[n - 1 :], where=flat)
    if bad is not None:
        s1[bad] = NAN
    out[n - 1 :] = s1
    return out


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    out = empty_like(x)
    if x.shape[0] < n:
        return out
    s1, _, center, bad, flat = _window_sums(x, n)
    s1 /= n
    s1 += center
    np.copyto(s1, x[n - 1 :], where=flat)
    if bad is not None:
        s1[bad] = NAN
    out[n - 1 :] = s1
    return out


def rolling_var(x: np.ndarray, n: int, ddof: int = 0) -> np.ndarray:
    """Rolling variance (population for ddof=0); clamped at 0, exactly 0 on a flat window."""
    out = empty_like(x)
    if x.shape[0] < n or n - ddof <= 0:
        return out
    s1, s2, _, bad, flat = _window_sums(x, n, squares=True)
    assert s2 is not None
    s1 *= s1
    s1 /= n
    np.subtract(s2, s1, out=s2)
    s2 /= n - ddof
    np.maximum(s2, 0.0, out=s2)
    s2[flat] = 0.0
    if bad is not None:
        s2[bad] = NAN
    out[n - 1 :] = s2
    return out


def rolling_std(x: np.ndarray, n: int, ddof: int = 0) -> np.ndarray:
    return np.sqrt(rolling_var(x, n, ddof))


class Extrema:
    """Rolling max or min of one array for several window lengths (sparse table).

    Level j holds the extremum over the 2**j bars ending at t; a window of n bars is the extremum of
    two overlapping power-of-two windows, so each window costs one pass after log2(n) shared passes.
    np.maximum/np.minimum propagate NaN, so a window holding a NaN yields NaN.
    """

    def __init__(self, x: np.ndarray, kind: str) -> None:
        self._op = np.maximum if kind == "max" else np.minimum
        self._levels = [x]

    def _level(self, j: int) -> np.ndarray:
        while len(self._levels) <= j:
            prev = self._levels[-1]
            half = 1 << (len(self._levels) - 1)
            nxt = empty_like(prev)
            if half < prev.shape[0]:
                self._op(prev[half:], prev[:-half], out=nxt[half:])
            self._levels.append(nxt)
        return self._levels[j]

    def window(self, n: int) -> np.ndarray:
        j = n.bit_length() - 1
        lev = self._level(j)
        rest = n - (1 << j)
        if rest == 0:
            return lev
        out = empty_like(lev)
        if rest < lev.shape[0]:
            self._op(lev[rest:], lev[:-rest], out=out[rest:])
        return out


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    return Extrema(x, "max").window(n)


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    return Extrema(x, "min").window(n)


def bars_since_extreme(x: np.ndarray, n: int, kind: str) -> np.ndarray:
    """Bars since the max (or min) of the n bars ending at t; the latest bar wins ties (TA-Lib).

    Same doubling scheme as Extrema, carrying the row index of the extreme along with its value.
    """
    better = np.greater_equal if kind == "max" else np.less_equal
    op = np.maximum if kind == "max" else np.minimum
    t_len = x.shape[0]
    rows = np.broadcast_to(np.arange(t_len, dtype=np.float64)[:, None], x.shape)
    val, idx = x, np.array(rows)

    def combine(v: np.ndarray, i: np.ndarray, k: int):
        nv, ni = empty_like(v), empty_like(i)
        if k < t_len:
            newer_wins = better(v[k:], v[:-k])
            op(v[k:], v[:-k], out=nv[k:])
            np.copyto(ni[k:], np.where(newer_wins, i[k:], i[:-k]))
        return nv, ni

    j = n.bit_length() - 1
    for lvl in range(j):
        val, idx = combine(val, idx, 1 << lvl)
    rest = n - (1 << j)
    if rest:
        val, idx = combine(val, idx, rest)
    out = rows - idx
    out[np.isnan(val)] = NAN
    return out


def weighted_ma(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted MA, weight n on the newest bar down to 1 (TA-Lib WMA)."""
    out = empty_like(x)
    t_len = x.shape[0]
    if t_len < n:
        return out
    acc = np.zeros((t_len - n + 1,) + x.shape[1:])
    for k in range(n):  # k bars back gets weight n - k
        acc += (n - k) * x[n - 1 - k : t_len - k]
    out[n - 1 :] = acc / (n * (n + 1) / 2)
    return out


def recurse(
    x: np.ndarray, seed: np.ndarray, alpha: float | np.ndarray, first_row_nan: bool = False
) -> np.ndarray:
    """out[t] = out[t-1] + alpha * (x[t] - out[t-1]), restarted at seed[t] wherever out[t-1] is NaN.

    With seed = rolling mean of the first n values this is TA-Lib's EMA (alpha = 2/(n+1)) or Wilder's
    smoothing (alpha = 1/n): the first value is the simple mean of the first n inputs, and after a NaN
    the smoother restarts from the mean of the next n clean inputs. A row is a re-seed row exactly when
    seed is finite there and NaN on the row before, so those rows are found up front.
    alpha may be a (T, N) array (KAMA's adaptive constant).
    With first_row_nan the re-seed rows themselves are reported as NaN (state is kept).
    """
    t_len = x.shape[0]
    out = empty_like(x)
    if t_len == 0:
        return out
    finite = np.isfinite(seed)
    reseed = finite.copy()
    reseed[1:] &= ~finite[:-1]
    any_reseed = reseed.any(axis=1)
    per_row = isinstance(alpha, np.ndarray)
    out[0] = seed[0]
    for t in range(1, t_len):
        row, prev = out[t], out[t - 1]
        np.subtract(x[t], prev, out=row)
        row *= alpha[t] if per_row else alpha  # type: ignore[index]
        row += prev
        if any_reseed[t]:
            np.copyto(row, seed[t], where=reseed[t])
    if first_row_nan:
        out[reseed] = NAN
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib EMA: seeded with the SMA of the first n values, then alpha = 2 / (n + 1)."""
    return recurse(x, rolling_mean(x, n), 2.0 / (n + 1))


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing (RMA): seeded with the simple mean of the first n values, alpha = 1 / n."""
    return recurse(x, rolling_mean(x, n), 1.0 / n)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high, prev close) - min(low, prev close); NaN on row 0 (TA-Lib TRANGE)."""
    pc = shift(close)
    with np.errstate(invalid="ignore"):
        tr = np.fmax(high, pc) - np.fmin(low, pc)
    tr[np.isnan(pc) | np.isnan(high) | np.isnan(low)] = NAN
    return tr


def mark_nan(out: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """Set out to NaN wherever any input is NaN (in place); returns out."""
    for a in inputs:
        out[np.isnan(a)] = NAN
    return out
