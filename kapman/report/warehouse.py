"""Warehouse coverage: OHLCV, option snapshots, A2 and A3 per trading day of the retention window.

Each cell of the heat map is a share of what the day should hold:

- OHLCV: tickers with a bar / the day's usual count, the median of the 20 days with bars before it
  (the universe drifts as tickers list and delist, so no fixed count is "full"); under half of it
  is a partial file, as status counts them (``inventory.thin_days``);
- option snapshots: the session's symbols taken / its watchlist scope, as status counts them
  (``inventory.options_day``: a chain from the session's close, 13:00 on an early close, to
  midnight New York, or the provider listed none); one symbol short is partial, as status says
  it is lost; a session before any of today's watchlist symbols was dated (the demo's week, a
  repave's restored ones) owes nothing and counts the chains it holds;
- A3: symbols covered / active watchlist symbols with a ticker;
- A2: rows with indicators / tickers with a bar that day (A2 computes every ticker with a bar);
  one row short is partial, as status says.

The retention window is status's and the nightly's (``kapman.ops.inventory.window_start``), ending
today by the warehouse's clock (``lifecycle.warehouse_now``: a sandbox database's recorded clock
too), its trading days from the NYSE calendar; the expected symbols are the watchlist scope
(``inventory.scope_of``); from a data set's first day on, a day nothing covers is a
gap and a day below its ``COMPLETE_AT`` share is partial.  Days before a data set's first day
are left blank: option snapshots, for one, cannot be taken for the past.  So are days that owe
nothing yet by the warehouse's clock: a day whose flat file is not due (the next morning), a
session that has not closed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from uuid import UUID

import psycopg

from kapman import clock, registry
from kapman.calendar import trading_days
from kapman.db import lifecycle
from kapman.ops import inventory, sessions
from kapman.report import page
from kapman.report.charts import Figure, axis, figure, title

#: Below this share an A3 day is listed as partial (a few symbols without a usable chain are normal).
PARTIAL_BELOW = 0.9
DATASETS = ("OHLCV", "option snapshots", "A2", "A3")
#: The share under which a data set's day is partial, as status counts them: a partial flat file,
#: a snapshot without every symbol of its scope (a symbol lost), a date short of one A2 row per bar.
COMPLETE_AT = {"OHLCV": inventory.THIN_DAY_SHARE, "option snapshots": 1.0, "A2": 1.0, "A3": PARTIAL_BELOW}
#: The runbook step that fills each data set's gaps.
MENDED_BY = {"OHLCV": f"{registry.command('ohlcv')} backfill --start D1 --end D2",
             "option snapshots": "not fetchable again for past days (snapshots are taken live)",
             "A2": f"{registry.command('a2')} --start-date D1 --end-date D2 (the whole window: --history)",
             "A3": f"{registry.command('a3')} --start-date D1 --end-date D2"}

@dataclass(frozen=True)
class Coverage:
    days: list[date]
    #: data set -> count per day (aligned with ``days``)
    counts: dict[str, list[int]]
    #: data set -> what a full day holds, per day
    expected: dict[str, list[int]]
    #: data set -> the day it is owed from, where that is not its first day with data (A2 while the
    #: indicator history is owed: the first day with bars, as status and the nightly count it;
    #: option snapshots from the first day with a chain, even one taken before the close)
    owed_from: dict[str, date] = field(default_factory=dict)

    def share(self, dataset: str) -> list[float]:
        return [min(1.0, n / e) if e else 0.0 for n, e in zip(self.counts[dataset], self.expected[dataset],
                                                              strict=True)]


def _now(conn: psycopg.Connection, today: date | None) -> datetime:
    return lifecycle.warehouse_now(conn) if today is None else clock.close_of(today)


def window(conn: psycopg.Connection, today: date | None = None) -> tuple[date, date]:
    """The retention window ending ``today`` (default: today by the warehouse's clock)."""
    now = _now(conn, today)
    return inventory.window_start(conn, now), clock.ny_date_of(now)


def coverage(conn: psycopg.Connection, today: date | None = None) -> Coverage:
    """Each day's counts from the inventory status reads (``inventory.take``), each snapshot day
    read as status reads it (``inventory.options_day``)."""
    now = _now(conn, today)
    start, end = inventory.window_start(conn, now), clock.ny_date_of(now)
    days = list(trading_days(start, end))
    inv = inventory.take(conn, start)
    current = inventory.scope_of(conn, end)
    taken = {d: _snapshot_day(conn, d, current) for d in days if d in inv.snapshots}
    watched = len(current)
    universe = int(statistics.median(inv.bars.values())) if inv.bars else 0
    counts = {"OHLCV": [inv.bars.get(d, 0) for d in days],
              "option snapshots": [taken[d].taken if d in taken else 0 for d in days],
              "A2": [inv.a2.get(d, 0) for d in days], "A3": [inv.a3.get(d, 0) for d in days]}
    # A2 is computed from a day's bars and A3 from a day with chains: a day without them owes neither
    # (the OHLCV and snapshot rows show that gap), as status counts them.  A day owes nothing before
    # its flat file is due or its session has closed (status's clock).
    due, closed = set(sessions.ohlcv_due_days(start, now)), set(sessions.closed_sessions(start, now))
    usual = inventory.usual_bars(inv)
    expected = {"OHLCV": [int(usual.get(d, inv.bars[d])) if d in inv.bars else universe if d in due else 0
                          for d in days],
                "option snapshots": [len(taken[d].expected) if d in taken else watched if d in closed else 0
                                     for d in days],
                "A2": counts["OHLCV"], "A3": [watched if d in taken else 0 for d in days]}
    return Coverage(days, counts, expected, _owed_from(inv, days, now))


def _snapshot_day(conn: psycopg.Connection, day: date, current: dict[str, UUID]) -> inventory.OptionsDay:
    """A session's snapshot as status reads it (``inventory.options_day``, the scope of the day).  A
    session whose scope was empty (the demo and a repave date their watchlists on the day they load
    them, after the week they snapshot or restore) owes nothing, as status says, and is read with
    today's scope: the chains it holds, each owed by nothing, make it a complete day, not a blank."""
    found = inventory.options_day(conn, day)
    if found.expected:
        return found
    held = inventory.options_day(conn, day, current)
    return inventory.OptionsDay(day, {s: current[s] for s in held.stored}, held.stored)


def _owed_from(inv: inventory.Inventory, days: list[date], now: datetime) -> dict[str, date]:
    """Where a data set is owed from when that precedes its own first day, as status counts it: A2
    from ``inventory.a2_first`` (the window's first day with bars while the indicator history is
    owed, or where A2 began, before the window too); option snapshots and A3 from the first day with
    a chain, even one taken before the close (``a3_missing``)."""
    owed = {}
    first = inventory.a2_first(inv, now)
    barred = [d for d in days if inv.bars.get(d) and first is not None and d >= first]
    if barred:
        owed["A2"] = barred[0]
    # A chain of the evening before the window (the inventory reads from its close) begins them earlier.
    earliest = min(inv.snapshots, default=None)   # none at all: an empty warehouse owes nothing
    snapped = [d for d in days if d in inv.snapshots or (d == days[0] and earliest is not None and earliest < d)]
    if snapped:
        owed["option snapshots"] = owed["A3"] = snapped[0]
    return owed


@dataclass(frozen=True)
class Gaps:
    dataset: str
    first: date | None            # first day with any data in the window
    missing: list[tuple[date, date, int]]
    partial: list[tuple[date, date, int]]


def first_covered(share: list[float]) -> int | None:
    """Index of the first day with any data."""
    return next((n for n, v in enumerate(share) if v > 0), None)


def first_owed(cov: Coverage, name: str) -> int | None:
    """Index of the day a data set is counted from: its first day with data, or the day it is owed from."""
    covered = first_covered(cov.share(name))
    owed = cov.days.index(cov.owed_from[name]) if name in cov.owed_from else None
    return min((i for i in (covered, owed) if i is not None), default=None)


def gaps(cov: Coverage) -> list[Gaps]:
    """Per data set, from the day it is counted from on: days with nothing, days with part of it."""
    out = []
    for name in DATASETS:
        share = cov.share(name)
        first = first_owed(cov, name)
        if first is None:
            out.append(Gaps(name, None, [], []))
            continue
        # a day that owes nothing (A2 without bars, A3 without a snapshot) is no gap
        tail = [(d, v) for d, v, e in zip(cov.days[first:], share[first:], cov.expected[name][first:], strict=True)
                if e]
        out.append(Gaps(name, cov.days[first], ranges(cov.days, [d for d, v in tail if v == 0]),
                        ranges(cov.days, [d for d, v in tail if 0 < v < COMPLETE_AT[name]])))
    return out


def ranges(calendar: list[date], selected: list[date]) -> list[tuple[date, date, int]]:
    """Runs of ``selected`` that are consecutive in ``calendar`` (so a weekend does not split one)."""
    index = {d: n for n, d in enumerate(calendar)}
    out: list[tuple[date, date, int]] = []
    for day in selected:
        if out and index[day] == index[out[-1][1]] + 1:
            out[-1] = (out[-1][0], day, out[-1][2] + 1)
        else:
            out.append((day, day, 1))
    return out


def heatmap(cov: Coverage) -> Figure:
    x = [d.isoformat() for d in cov.days]
    z: list[list[float | None]] = []
    for name in DATASETS:
        share = cov.share(name)
        first = first_owed(cov, name)
        first = len(share) if first is None else first
        row: list[float | None] = [None] * first
        row += [round(100 * v, 1) if e else None     # blank: the day owes nothing
                for v, e in zip(share[first:], cov.expected[name][first:], strict=True)]
        z.append(row)
    text = [[f"{n} of {e}" for n, e in zip(cov.counts[name], cov.expected[name], strict=True)] for name in DATASETS]
    trace = {"type": "heatmap", "x": x, "y": list(DATASETS), "z": z, "zmin": 0, "zmax": 100, "text": text,
             "xgap": 1, "ygap": 3, "colorscale": [[0, "#ef4444"], [0.5, "#facc15"], [1, "#22c55e"]],
             "colorbar": {"title": {"text": "% covered"}, "thickness": 12},
             "hovertemplate": "%{x} %{y}<br>%{text} (%{z}%)<extra></extra>"}
    span = f"coverage per trading day, {cov.days[0]} .. {cov.days[-1]}" if cov.days else "no trading days"
    return figure([trace], height=300, title=title(span), margin={"l": 120, "r": 20, "t": 40, "b": 60},
                  xaxis=axis(type="category", nticks=24), yaxis=axis(autorange="reversed"))


def _gap_rows(found: list[Gaps], cov: Coverage) -> list[list[tuple[str, object | None]]]:
    rows: list[list[tuple[str, object | None]]] = []
    for g in found:
        total = sum(1 for c in cov.counts[g.dataset] if c)
        if g.first is None:
            rows.append([(page.esc(g.dataset), None), ("no data in the window", None), ("", None), ("", None)])
            continue
        shown = [f"{a} .. {b} ({n})" if n > 1 else str(a) for a, b, n in g.missing]
        part = [f"{a} .. {b} ({n})" if n > 1 else str(a) for a, b, n in g.partial]
        rows.append([(page.esc(g.dataset), None),
                     (f"{total} days from {g.first}", None),
                     (page.esc(", ".join(shown) or "none"), None),
                     (page.esc(", ".join(part) or "none"), None)])
    return rows


def render(cov: Coverage, plotly_src: str | None = None) -> str:
    found = gaps(cov)
    mend = "".join(f"<li>{page.esc(k)}: <code>{page.esc(v)}</code></li>" for k, v in MENDED_BY.items())
    body = (f"<h1>Warehouse coverage</h1>"
            f'<div class="sub">{len(cov.days)} trading days in the retention window '
            f"({cov.days[0] if cov.days else '-'} .. {cov.days[-1] if cov.days else '-'}, "
            "by the warehouse's clock)</div>"
            + page.chart("coverage", heatmap(cov))
            + "<h2>Gaps (from each data set's first day; A2 from the first day with bars while the indicator "
              "history is owed, A3 from the first snapshot; a day without bars or a snapshot owes no A2 or A3)</h2>"
            + page.table(["data set", "covered", "missing trading days", "partial days"], _gap_rows(found, cov))
            + f"<h2>Mending a gap</h2><ul>{mend}</ul>")
    return page.document("Warehouse coverage - KapMan", body, plotly_src=plotly_src)


def write_warehouse(conn: psycopg.Connection, out: Path) -> tuple[Path, list[Gaps]]:
    """The page at ``out``, loading plotly.js from a file written beside it."""
    cov = coverage(conn)
    return page.write(out, render(cov, page.write_plotly(out.parent))), gaps(cov)
