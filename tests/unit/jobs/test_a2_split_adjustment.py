"""A2's split adjustment on panels: each cell reads its ticker's bars as adjusted by its own date."""

from __future__ import annotations

import numpy as np

from kapman.jobs import a2_splits
from kapman.jobs.a2_local_ta import Bars, panels

DAYS = np.arange(np.datetime64("2025-06-02"), np.datetime64("2025-06-12"))   # ten calendar days


def _bars() -> Bars:
    """Two tickers with a bar every day; ticker 1 skips day 3."""
    ticker = np.repeat([0, 1], len(DAYS))
    date = np.tile(DAYS, 2)
    keep = ~((ticker == 1) & (date == DAYS[3]))
    close = np.where(ticker == 0, 100.0, 50.0) + np.tile(np.arange(len(DAYS), dtype=float), 2)
    values = {k: close[keep] for k in ("open", "high", "low", "close")}
    values["volume"] = np.full(keep.sum(), 1000.0)
    return Bars(ids=np.zeros((2, 16), np.uint8), ticker=ticker[keep], date=date[keep], values=values)


def _splits(*rows: tuple[int, str, float]) -> a2_splits.WindowSplits:
    col = np.array([r[0] for r in rows], dtype=np.intp)
    day = np.array([r[1] for r in rows], dtype="datetime64[D]")
    return a2_splits.window_splits(col, day, np.array([r[2] for r in rows]))


def test_cells_after_the_split_read_the_adjusted_column_in_place() -> None:
    bars = _bars()
    p, pos = panels(bars)
    raw = {k: v.copy() for k, v in p.items()}
    cols, days = np.array([0, 1]), np.array([DAYS[-1], DAYS[-1]])
    out, src = a2_splits.adjust(p, _splits((0, "2025-06-07", 10.0)), bars.ticker, bars.date, pos, cols, days)
    assert out["close"].shape == raw["close"].shape and (src == cols).all()      # no extra column
    before = np.arange(len(DAYS)) < 5                                            # bars before 2025-06-07
    np.testing.assert_array_equal(out["close"][before, 0], raw["close"][before, 0] / 10)
    np.testing.assert_array_equal(out["volume"][before, 0], raw["volume"][before, 0] * 10)
    np.testing.assert_array_equal(out["close"][~before, 0], raw["close"][~before, 0])
    np.testing.assert_array_equal(out["close"][:, 1], raw["close"][:, 1])        # the other ticker


def test_a_range_across_the_split_gets_one_extra_column_with_the_raw_bars() -> None:
    bars = _bars()
    p, pos = panels(bars)
    raw = {k: v.copy() for k, v in p.items()}
    cols = np.array([1, 1, 1, 0])
    days = np.array([DAYS[4], DAYS[6], DAYS[9], DAYS[9]])
    splits = _splits((1, "2025-06-07", 0.1), (1, "2025-06-10", 2.0))   # a reverse split, then a forward one
    out, src = a2_splits.adjust(p, splits, bars.ticker, bars.date, pos, cols, days)
    assert out["close"].shape[1] == 4 and list(src) == [2, 3, 1, 0]
    np.testing.assert_array_equal(out["close"][:, 2], raw["close"][:, 1])        # as of 06-06: nothing yet
    # ticker 1 skips day 3, so its rows 0..3 are days 0, 1, 2, 4: all before 06-07
    rows_before_first = 4
    expect = raw["close"][:, 1].copy()
    expect[:rows_before_first] /= 0.1
    np.testing.assert_array_equal(out["close"][:, 3], expect)                    # as of 06-09: the first
    latest = raw["close"][:, 1].copy()
    latest[:rows_before_first] /= 0.1
    latest[:7] /= 2.0                                                            # rows before 06-10
    np.testing.assert_allclose(out["close"][:, 1], latest, rtol=1e-15)           # as of 06-11: both
    np.testing.assert_array_equal(out["close"][:, 0], raw["close"][:, 0])


def test_no_split_in_the_window_changes_nothing() -> None:
    bars = _bars()
    p, pos = panels(bars)
    cols = np.array([0, 1])
    out, src = a2_splits.adjust(p, a2_splits.WindowSplits.none(), bars.ticker, bars.date, pos, cols,
                                np.array([DAYS[-1]] * 2))
    assert out is p and src is cols
    dropped = a2_splits.window_splits(np.array([-1]), np.array(["2025-06-05"], dtype="datetime64[D]"),
                                      np.array([4.0]))
    assert len(dropped) == 0
