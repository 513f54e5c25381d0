"""A2's point-in-time split adjustment.

``ohlcv`` holds the bars as the flat files deliver them: unadjusted.  A value for (ticker, D) is
computed on the ticker's bars adjusted as of D: every bar before a split executed on or before D
has its prices divided by the split's ratio (split_to / split_from) and its volume multiplied by
it.  A split executed after D changes nothing for D, so a stored value never moves when a later
split is loaded, and recomputing D later gives the same bytes.

A look-back window's panels are built once for all of its dates.  Tickers without a split in the
window are used as read.  A ticker with splits is adjusted in place as of the latest of its wanted
dates; only when some of its wanted dates fall before one of those splits (a date range across
an execution date) does it get one extra column per other state of adjustment, and those dates'
cells read that column.  The cost is a few columns' arithmetic per split, not a pass over the
panel.

Which recorded splits count (once, and only those the prices show) is decided by
``kapman.jobs.split_checks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import psycopg

from kapman.jobs import split_checks

PRICES = ("open", "high", "low", "close")

@dataclass(frozen=True)
class WindowSplits:
    """The splits that adjust bars of one window, by panel column, in (column, date) order."""

    col: np.ndarray     # intp: panel column of the split's ticker
    day: np.ndarray     # datetime64[D]: execution date (the first session at the new price)
    ratio: np.ndarray   # float64: split_to / split_from (10 for 10-for-1, 0.1 for 1-for-10)

    @classmethod
    def none(cls) -> WindowSplits:
        return cls(np.empty(0, np.intp), np.empty(0, "datetime64[D]"), np.empty(0))

    def __len__(self) -> int:
        return len(self.col)


def read(conn: psycopg.Connection, after: date, through: date
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[split_checks.CheckedSplit]]:
    """(ticker uuids as (n, 16) uint8, execution dates, ratios) of the splits applied in
    (after, through] (``kapman.jobs.split_checks``: in the prices, once) of tickers in
    ``public.tickers``: those that adjust a window starting at ``after``; and the records left
    out, with why.  Splits of symbols without a ticker have no bars to adjust."""
    found = split_checks.checked(conn, after, through)
    rows = [s for s in found if s.applied]
    uid = np.frombuffer(b"".join(r.ticker_id.bytes for r in rows), dtype=np.uint8).reshape(len(rows), 16)
    return (uid, np.array([r.execution_date for r in rows], dtype="datetime64[D]"),
            np.array([r.ratio for r in rows]), [s for s in found if not s.applied])


def window_splits(col: np.ndarray, day: np.ndarray, ratio: np.ndarray) -> WindowSplits:
    """Splits matched to panel columns (-1: ticker not in the window, dropped), sorted."""
    keep = col >= 0
    col, day, ratio = col[keep], day[keep], ratio[keep]
    order = np.lexsort((day, col))
    return WindowSplits(col[order].astype(np.intp), day[order], ratio[order])


def split_factors(dates: np.ndarray, days: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Per row of one column, the product of the ratios of the given splits executed after its bar."""
    factor = np.ones(len(dates))
    for day, ratio in zip(days, ratios, strict=True):
        factor[dates < day] *= ratio   # NaT rows (no bar) compare False and stay 1
    return factor


def _adjusted(p: dict[str, np.ndarray], col: int, factor: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: p[name][:, col] / factor for name in PRICES}
    out["volume"] = p["volume"][:, col] * factor
    return out


def adjust(p: dict[str, np.ndarray], splits: WindowSplits, bar_col: np.ndarray, bar_date: np.ndarray,
           pos: np.ndarray, cols: np.ndarray, cell_day: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Panels adjusted for ``splits``, and the panel column each wanted cell is to be computed from.

    ``p``: (T, N) panels (changed in place); ``bar_col``/``bar_date``/``pos``: each bar's column,
    date and row; ``cols``/``cell_day``: each wanted cell's column and date.  The returned panels
    have N + extra columns; the returned columns equal ``cols`` except for cells of dates before
    one of their ticker's splits in the window.
    """
    if not len(splits) or not len(cols):
        return p, cols
    split_cols = np.unique(splits.col)
    cells = np.flatnonzero(np.isin(cols, split_cols))
    if not len(cells):
        return p, cols
    # Each wanted cell's state of adjustment: how many of its ticker's splits are executed by its date.
    epoch = np.zeros(len(cells), dtype=np.intp)
    for c, d in zip(splits.col, splits.day, strict=True):
        epoch += (cols[cells] == c) & (d <= cell_day[cells])
    # The bar dates of the split tickers' columns, row-aligned with the panels.
    mine = np.flatnonzero(np.isin(bar_col, split_cols))
    dates = np.full((p["close"].shape[0], len(split_cols)), np.datetime64("NaT"), dtype="datetime64[D]")
    dates[pos[mine], np.searchsorted(split_cols, bar_col[mine])] = bar_date[mine]
    src = cols.copy()
    extra: list[dict[str, np.ndarray]] = []
    n = p["close"].shape[1]
    for j, c in enumerate(split_cols):
        own = np.flatnonzero(cols[cells] == c)
        if not len(own):
            continue
        first, last = np.searchsorted(splits.col, [c, c + 1])
        days, ratios = splits.day[first:last], splits.ratio[first:last]
        states = np.unique(epoch[own])
        latest = int(states[-1])
        for k in states[:-1]:   # earlier states first, from the unadjusted column
            extra.append(_adjusted(p, c, split_factors(dates[:, j], days[:k], ratios[:k])))
            src[cells[own[epoch[own] == k]]] = n + len(extra) - 1
        if latest:
            for name, values in _adjusted(p, c, split_factors(dates[:, j], days[:latest], ratios[:latest])).items():
                p[name][:, c] = values
    if extra:
        p = {name: np.concatenate([p[name], np.stack([e[name] for e in extra], axis=1)], axis=1) for name in p}
    return p, src
