"""A2 reads several look-back windows at once and cuts each window out of that one read."""

from __future__ import annotations

from datetime import date

import numpy as np

from kapman.jobs.a2_local_ta import Bars, _cut, panels
from kapman.jobs.a2_window import anchor, group_by_anchor, read_batches


def test_anchors_are_read_in_consecutive_runs_oldest_first() -> None:
    days = [date(2025, m, 3) for m in range(1, 12)] + [date(2025, 11, 4)]
    groups = group_by_anchor(days)
    batches = read_batches(groups, size=4)
    assert [len(b) for b in batches] == [4, 4, 3]
    assert [a for b in batches for a in b] == list(groups)
    assert batches[-1][anchor(date(2025, 11, 4))] == [date(2025, 11, 3), date(2025, 11, 4)]
    assert read_batches({}) == []


def test_a_window_cut_from_a_longer_read_has_the_panels_of_its_own_read() -> None:
    rng = np.random.default_rng(3)
    days = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-03-01"))
    ticker = np.repeat(np.arange(3), len(days))
    when = np.tile(days, 3)
    order = rng.permutation(len(when))   # bars arrive in any order
    close = rng.random(len(when))
    long = Bars(ids=np.zeros((3, 16), np.uint8), ticker=ticker[order], date=when[order],
                values={"close": close[order]})
    own = (when >= np.datetime64("2025-02-01")) & (when <= np.datetime64("2025-02-20"))
    alone = Bars(ids=long.ids, ticker=ticker[own], date=when[own], values={"close": close[own]})
    for read in (long, long.in_date_order()):   # a mask of the read, or a slice of its sorted copy
        cut = _cut(read, date(2025, 2, 1), date(2025, 2, 20))
        assert sorted(cut.date.tolist()) == sorted(alone.date.tolist())
        np.testing.assert_array_equal(panels(cut)[0]["close"], panels(alone)[0]["close"])
    assert _cut(alone, date(2025, 2, 1), date(2025, 2, 20)) is alone   # a read of exactly one window
