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
    out = np.empty(x.shape, dtype=np.float64)
    out[:k] = NAN
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def diff(x: np.ndarray, k: int = 1) -> np.ndarray:
    """x[t] - x[t - k]."""
    out = np.empty(x.shape, dtype=np.float64)
    out[:k] = NAN
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
    else 0). Only precision depends on it, and it makes a constant column sum to exactly 0.

    Scanning starts at the first of the top rows where any column is finite; a column still NaN there
    takes its first non-NaN value on a later such row."""
    head = x[:_CENTER_SCAN]
    usable = np.isfinite(head).any(axis=tuple(range(1, head.ndim)))
    if not usable.any():
        return np.zeros(x.shape[1:])
    first = int(usable.argmax())
    c = x[first].copy()
    missing = np.isnan(c)
    if missing.any():
        rest = head[first + 1 :][usable[first + 1 :]]
        if rest.shape[0]:
            cand = ~np.isnan(rest[:, missing])
            found = cand.any(axis=0)
            idx = cand.argmax(axis=0)
            fill = c[missing]
            fill[found] = rest[:, missing][idx[found], np.flatnonzero(found)]
            c[missing] = fill
        c[np.isnan(c)] = 0.0
    return c


# Rows per group in cumsum0: about sqrt(T) for T of a few hundred bars.
_SCAN_GROUP = 16


def _scan_buffer(t_len: int, tail: tuple[int, ...]) -> np.ndarray:
    """A zeroed-edge buffer for _scan: row 0 and the padding rows after row t_len are 0; the caller
    fills rows 1..t_len."""
    g = _SCAN_GROUP
    n_groups = max(-(-t_len // g), 1)
    buf = np.empty((n_groups * g + 1,) + tail, dtype=np.float64)
    buf[0] = 0
    buf[t_len + 1 :] = 0
    return buf


def _scan(buf: np.ndarray, t_len: int) -> np.ndarray:
    """Cumulate rows 1.. of a _scan_buffer in place; returns its first t_len + 1 rows.

    np.cumsum(axis=0) walks each column with a large stride and is slow on a C-ordered panel, and a
    plain row loop is dominated by call overhead; instead rows are cumulated inside groups of
    _SCAN_GROUP rows (one vector op per position, over all groups at once), then the group totals are
    carried forward. The order of additions per column does not depend on the number of columns.
    """
    g = _SCAN_GROUP
    n_groups = (buf.shape[0] - 1) // g
    grp = buf[1:].reshape((n_groups, g) + buf.shape[1:])
    for k in range(1, g):
        grp[:, k] += grp[:, k - 1]
    for i in range(1, n_groups):
        grp[i] += grp[i - 1, g - 1]
    return buf[: t_len + 1]


def cumsum0(x: np.ndarray) -> np.ndarray:
    """Cumulative sum down the rows with a leading zero row (shape T+1); see _scan."""
    t_len = x.shape[0]
    buf = _scan_buffer(t_len, x.shape[1:])
    buf[1 : t_len + 1] = x
    return _scan(buf, t_len)


def _nan_head(shape: tuple[int, ...], k: int) -> np.ndarray:
    """An uninitialised float64 array whose first k rows are NaN."""
    out = np.empty(shape, dtype=np.float64)
    out[:k] = NAN
    return out


class Windows:
    """Rolling sums of one (T, N) array for any number of window lengths, from one cumulative pass.

    Subtracting a per-column centre before cumulating keeps the cumulative sums small, so the
    window differences lose little precision. Windows of identical values (a halt, a run of zero
    volume) are detected from a running count of value changes and report their exact sum / mean /
    zero variance instead of rounding residue; a running count of NaN marks windows holding a NaN
    (NaN output). The centred values, the change count and the NaN count are cumulated together.
    """

    def __init__(self, x: np.ndarray, squares: bool = False) -> None:
        self.x = x
        t_len = x.shape[0]
        self.t_len = t_len
        self.center = _center(x)
        nan = np.isnan(x)
        self.has_nan = bool(nan.any())
        moved = np.not_equal(x[1:], x[:-1])
        self.still = not moved.all()  # some bar repeats the previous value: flat windows possible
        chans = 1 + squares + self.still + self.has_nan
        buf = _scan_buffer(t_len, (chans,) + x.shape[1:])
        rows = buf[1 : t_len + 1]
        z = rows[:, 0]
        np.subtract(x, self.center, out=z)
        if self.has_nan:
            np.copyto(z, 0.0, where=nan)
        k = 1
        self._sq = self._moves = self._nans = -1
        if squares:
            np.multiply(z, z, out=rows[:, k])
            self._sq, k = k, k + 1
        if self.still:
            rows[0, k] = 1.0
            rows[1:, k] = moved
            self._moves, k = k, k + 1
        if self.has_nan:
            rows[:, k] = nan
            self._nans = k
        self._cs = _scan(buf, t_len)

    def _raw(self, n: int, out: np.ndarray, chan: int = 0) -> np.ndarray:
        cs = self._cs[:, chan]
        return np.subtract(cs[n:], cs[:-n], out=out)

    def _flat(self, n: int) -> np.ndarray | bool:
        """Rows n-1..: True where the window holds n identical values."""
        if n <= 1:
            return True
        if not self.still:
            return False
        cm = self._cs[:, self._moves]
        # the n - 1 changes inside the window ending at t sit on rows t-n+2..t
        return cm[n:] == cm[1 : self.t_len - n + 2]

    def _bad(self, n: int) -> np.ndarray | None:
        if not self.has_nan:
            return None
        cn = self._cs[:, self._nans]
        return cn[n:] != cn[:-n]

    def _finish(self, s: np.ndarray, n: int, flat_value, bad: np.ndarray | None) -> None:
        flat = self._flat(n)
        if flat is True:
            np.copyto(s, flat_value)
        elif flat is not False:
            np.copyto(s, flat_value, where=flat)
        if bad is not None:
            np.copyto(s, NAN, where=bad)

    def sum(self, n: int) -> np.ndarray:
        if self.t_len < n:
            return empty_like(self.x)
        out = _nan_head(self.x.shape, n - 1)
        s = self._raw(n, out[n - 1 :])
        s += n * self.center
        flat = self._flat(n)
        self._finish(s, n, n * self.x[n - 1 :] if flat is not False else None, self._bad(n))
        return out

    def mean(self, n: int) -> np.ndarray:
        if self.t_len < n:
            return empty_like(self.x)
        out = _nan_head(self.x.shape, n - 1)
        s = self._raw(n, out[n - 1 :])
        s /= n
        s += self.center
        self._finish(s, n, self.x[n - 1 :], self._bad(n))
        return out

    def var(self, n: int, ddof: int = 0) -> np.ndarray:
        """Rolling variance (population for ddof=0); clamped at 0, exactly 0 on a flat window."""
        if self.t_len < n or n - ddof <= 0:
            return empty_like(self.x)
        if self._sq < 0:
            return Windows(self.x, squares=True).var(n, ddof)
        out = _nan_head(self.x.shape, n - 1)
        s1 = self._raw(n, np.empty((self.t_len - n + 1,) + self.x.shape[1:]))
        s2 = self._raw(n, out[n - 1 :], self._sq)
        s1 *= s1
        s1 /= n
        np.subtract(s2, s1, out=s2)
        s2 /= n - ddof
        np.maximum(s2, 0.0, out=s2)
        self._finish(s2, n, 0.0, self._bad(n))
        return out


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    return Windows(x).sum(n)


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    return Windows(x).mean(n)


def rolling_var(x: np.ndarray, n: int, ddof: int = 0) -> np.ndarray:
    """Rolling variance (population for ddof=0); clamped at 0, exactly 0 on a flat window."""
    return Windows(x, squares=True).var(n, ddof)


def rolling_std(x: np.ndarray, n: int, ddof: int = 0) -> np.ndarray:
    out = rolling_var(x, n, ddof)
    return np.sqrt(out, out=out)


class Extrema:
    """Rolling max or min of one array for several window lengths (sparse table).

    Level j holds the extremum over the 2**j bars ending at t; a window of n bars is the extremum of
    two overlapping power-of-two windows, so each window costs one pass after log2(n) shared passes.
    np.maximum/np.minimum propagate NaN, so a window holding a NaN yields NaN.
    """

    def __init__(self, x: np.ndarray, kind: str) -> None:
        self._op = np.maximum if kind == "max" else np.minimum
        self._levels = [x]
        self._windows: dict[int, np.ndarray] = {}

    def _level(self, j: int) -> np.ndarray:
        while len(self._levels) <= j:
            prev = self._levels[-1]
            half = 1 << (len(self._levels) - 1)
            nxt = _nan_head(prev.shape, half)
            if half < prev.shape[0]:
                self._op(prev[half:], prev[:-half], out=nxt[half:])
            self._levels.append(nxt)
        return self._levels[j]

    def window(self, n: int) -> np.ndarray:
        if n in self._windows:
            return self._windows[n]
        j = n.bit_length() - 1
        lev = self._level(j)
        rest = n - (1 << j)
        if rest == 0:
            return lev
        out = _nan_head(lev.shape, rest)
        if rest < lev.shape[0]:
            self._op(lev[rest:], lev[:-rest], out=out[rest:])
        self._windows[n] = out
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
    wins = np.empty(x.shape, dtype=bool)

    def combine(v: np.ndarray, i: np.ndarray, k: int):
        nv, ni = _nan_head(v.shape, k), _nan_head(i.shape, k)
        if k < t_len:
            newer_wins = better(v[k:], v[:-k], out=wins[k:])
            op(v[k:], v[:-k], out=nv[k:])
            # the newer index where newer_wins, else the older one; row numbers are small integers,
            # so older + (0 or 1) * (newer - older) is exact and avoids a data-dependent branch
            step = np.subtract(i[k:], i[:-k], out=ni[k:])
            step *= newer_wins
            step += i[:-k]
        return nv, ni

    j = n.bit_length() - 1
    for lvl in range(j):
        val, idx = combine(val, idx, 1 << lvl)
    rest = n - (1 << j)
    if rest:
        val, idx = combine(val, idx, rest)
    out = np.subtract(rows, idx, out=idx)
    np.copyto(out, NAN, where=np.isnan(val))
    return out


def weighted_ma(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted MA, weight n on the newest bar down to 1 (TA-Lib WMA)."""
    out = empty_like(x)
    t_len = x.shape[0]
    if t_len < n:
        return out
    acc = np.zeros((t_len - n + 1,) + x.shape[1:])
    tmp = np.empty_like(acc)
    for k in range(n):  # k bars back gets weight n - k
        acc += np.multiply(n - k, x[n - 1 - k : t_len - k], out=tmp)
    np.divide(acc, n * (n + 1) / 2, out=out[n - 1 :])
    return out


# Reseed positions of a recursive smoother: (rows, cols, values), sorted by row.
Reseeds = tuple[np.ndarray, np.ndarray, np.ndarray]


def _dense_reseeds(seed: np.ndarray) -> Reseeds:
    """The rows where seed turns finite (finite there, not finite on the row before), and its values."""
    finite = np.isfinite(seed)
    reseed = finite.copy()
    reseed[1:] &= ~finite[:-1]
    flat = np.flatnonzero(reseed)
    rows, cols = np.divmod(flat, seed.shape[1])
    return rows, cols, seed.reshape(-1)[flat]


def window_seeds(x: np.ndarray, n: int, total: bool = False) -> Reseeds:
    """_dense_reseeds(rolling_mean(x, n)) (rolling_sum with total), bit for bit, without the panel.

    rolling_mean(x, n) turns finite on the last row of the first n bars of every clean run of at least
    n bars. On a column's first run nothing precedes the run in the cumulative sum, so its value is
    rebuilt from the n gathered values, added in the grouping order of _scan; columns with a later
    qualifying run (a NaN gap inside the column) take the full rolling computation instead.
    """
    t_len, n_cols = x.shape
    if t_len < n:
        e = np.empty(0, dtype=np.intp)
        return e, e, np.empty(0)
    if np.isinf(x).any():
        return _dense_reseeds(Windows(x).sum(n) if total else Windows(x).mean(n))
    nan = np.isnan(x)
    start = ~nan
    start[1:] &= nan[:-1]
    srows, scols = np.divmod(np.flatnonzero(start), n_cols)  # row-major: ascending rows
    _, first_at = np.unique(scols, return_index=True)
    first = np.zeros(len(srows), dtype=bool)
    first[first_at] = True
    fits = srows <= t_len - n
    steps = np.arange(n)

    def clean(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if n == 1:
            return np.ones(len(rows), dtype=bool)
        return ~nan[rows[:, None] + steps[1:], cols[:, None]].any(axis=1)

    # columns whose later runs also seed: computed in full
    later = ~first & fits
    later_idx = np.flatnonzero(later)
    fb_cols = np.unique(scols[later_idx[clean(srows[later_idx], scols[later_idx])]])

    sel = np.flatnonzero(first & fits)
    if fb_cols.size:
        sel = sel[~np.isin(scols[sel], fb_cols)]
    f, cols = srows[sel], scols[sel]
    ok = clean(f, cols)
    f, cols = f[ok], cols[ok]

    # the centre _center would pick: the column's first non-NaN value within its scan rows
    # (first-run columns start at their first non-NaN row)
    center = np.where(f < _CENTER_SCAN, x[np.minimum(f, t_len - 1), cols], 0.0)
    win = x[f[:, None] + steps, cols[:, None]]
    z = win - center[:, None]
    g = _SCAN_GROUP
    acc = 0.0 + z[:, 0]
    carry = np.zeros(len(f))
    for i in range(1, n):
        new_group = (f + i) % g == 0
        if new_group.all():
            carry = acc + carry
            acc = 0.0 + z[:, i]
        elif new_group.any():
            carry = np.where(new_group, acc + carry, carry)
            acc = np.where(new_group, 0.0 + z[:, i], acc + z[:, i])
        else:
            acc = acc + z[:, i]
    s = acc + carry
    last = win[:, -1]
    flat = (win == last[:, None]).all(axis=1)
    if total:
        s += n * center
        vals = np.where(flat, n * last, s)
    else:
        s /= n
        s += center
        vals = np.where(flat, last, s)
    rows = f + (n - 1)

    if fb_cols.size:
        sub = x[:, fb_cols]
        w = Windows(sub)
        r2, c2, v2 = _dense_reseeds(w.sum(n) if total else w.mean(n))
        rows = np.concatenate([rows, r2])
        cols = np.concatenate([cols, fb_cols[c2]])
        vals = np.concatenate([vals, v2])
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order], vals[order]


def recurse_reseeded(
    x: np.ndarray, reseeds: Reseeds, alpha: float | np.ndarray, first_row_nan: bool = False
) -> np.ndarray:
    """out[t] = out[t-1] + alpha * (x[t] - out[t-1]), restarted from the given values at the reseed
    positions (rows sorted ascending); NaN until a column's first reseed. See recurse."""
    t_len = x.shape[0]
    rows, cols, vals = reseeds
    if t_len == 0 or rows.size == 0:
        return empty_like(x)
    row_ids, begins = np.unique(rows, return_index=True)
    ends = [*begins[1:], rows.size]
    t0 = int(row_ids[0])
    out = _nan_head(x.shape, t0 + 1)
    per_row = isinstance(alpha, np.ndarray)
    events = {int(t): (cols[b0:b1], vals[b0:b1]) for t, b0, b1 in zip(row_ids, begins, ends, strict=True)}
    c0, v0 = events.pop(t0)
    out[t0, c0] = v0
    for t in range(t0 + 1, t_len):
        row, prev = out[t], out[t - 1]
        np.subtract(x[t], prev, out=row)
        row *= alpha[t] if per_row else alpha  # type: ignore[index]
        row += prev
        ev = events.get(t)
        if ev is not None:
            row[ev[0]] = ev[1]
    if first_row_nan:
        out[rows, cols] = NAN
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
    return recurse_reseeded(x, _dense_reseeds(seed), alpha, first_row_nan)


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib EMA: seeded with the SMA of the first n values, then alpha = 2 / (n + 1)."""
    return recurse_reseeded(x, window_seeds(x, n), 2.0 / (n + 1))


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing (RMA): seeded with the simple mean of the first n values, alpha = 1 / n."""
    return recurse_reseeded(x, window_seeds(x, n), 1.0 / n)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high, prev close) - min(low, prev close); NaN on row 0 (TA-Lib TRANGE)."""
    pc = shift(close)
    with np.errstate(invalid="ignore"):
        tr = np.fmax(high, pc) - np.fmin(low, pc)
    tr[np.isnan(pc) | np.isnan(high) | np.isnan(low)] = NAN
    return tr


def where0(cond: np.ndarray, a: np.ndarray) -> np.ndarray:
    """np.where(cond, a, 0.0) where the sign of a zero a does not matter (cond implies a > 0, say).

    Computed as a * cond: a select with an unpredictable mask is several times slower than a
    multiplication. Adding 0.0 turns the -0.0 of a negative a times False into 0.0, and the NaN
    that a non-finite a times False gives is reset to 0.0."""
    out = np.multiply(a, cond)
    out += 0.0
    nonfinite = ~np.isfinite(a)
    if nonfinite.any():
        np.copyto(out, 0.0, where=nonfinite & ~cond)
    return out


def mark_nan(out: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """Set out to NaN wherever any input is NaN (in place); returns out."""
    for a in inputs:
        out[np.isnan(a)] = NAN
    return out
