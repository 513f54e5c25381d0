"""A2 end to end (read, compute, write) on a full-market universe, against a per-ticker TA-Lib loop.

    venv/bin/python -m bench.bench_a2 [--tickers 11000] [--repeat 3]

Loads ~290 bars for every sandbox ticker straight into ohlcv, then times the A2 job for one date
and for a 5-day range across a month boundary ending on it, twice each: as new dates (nothing
stored: the nightly case, a straight COPY) and again with --force (every row exists: COPY into
staging and a merge that finds them unchanged), and the kernels alone against TA-Lib called per
ticker on the same panel, on one thread each (the kernels on the job's threads beside them).
"Kernels alone" is the job's compute step: every indicator's full series for every ticker, in
--ticker-chunk-size chunks, keeping the date's row (the TA-Lib loop likewise computes full series
and keeps nothing).  One whole-panel call that keeps all ~2 GB of outputs is printed beside it for
reference.  Last, the real command runs once for the new date and once for the range, each in a
child whose own peak memory is printed (bench/measure.py) with the budget (one date: < 2 GiB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import date

import numpy as np
import psycopg

from bench.bench_a2_kernels import talib_loop
from bench.common import Figure, memory_figure, print_table, scratch_database
from bench.measure import GIB, load_text, run_command
from kapman.jobs import a2_local_ta
from kapman.jobs.a2_window import anchor
from kapman.metrics.indicators import compute_technical
from kapman.metrics.price import compute_price_metrics
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market

#: The one date, and a 5-date range ending on it that crosses a month boundary (its first date's
#: window starts a month earlier: a range within one month would understate what it reads).
END = date(2025, 12, 2)
RANGE = [date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28), date(2025, 12, 1), END]
#: The sandbox market's last day.
MARKET_END = date(2025, 12, 19)


def load(conn: psycopg.Connection, market: Market) -> int:
    load_tickers(conn, market)
    rows = load_bars(conn, market)
    conn.execute("VACUUM ANALYZE public.ohlcv")
    return rows


def command_memory(conn: psycopg.Connection, url: str) -> list[Figure]:
    """The real command for one new date and for the 5-date range, each in a child measured alone."""
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    figures = []
    for label, dates, budget in (("one new date", ["--date", END.isoformat()], 2 * GIB),
                                 ("5 new dates", ["--start-date", RANGE[0].isoformat(), "--end-date",
                                                  END.isoformat()], None)):
        conn.execute("TRUNCATE public.daily_snapshots")
        run = run_command("scripts.run_a2_local_ta", [*dates, "--db-url", url, "--json", "-q"], env)
        if run.returncode != 0:
            raise SystemExit(f"A2 failed: {run.stderr}")
        load = load_text()
        print(f"  A2 command, {label}: {run.wall:.1f}s wall, main process {run.main_mib:,.0f} MiB, "
              f"with its children {run.peak_mib:,.0f} MiB (load {load})", file=sys.stderr, flush=True)
        figure = memory_figure("a2", f"command, {label},", run.main_mib, budget, "main process", load)
        if budget is None:
            figure.target = f"one date's: < {2 * GIB}"
        figures.append(figure)
        if run.children_mib:
            figures.append(memory_figure("a2", f"command, {label},", run.children_mib, budget,
                                         "largest worker process", load))
    return figures


def run(tickers: int = 11000, repeat: int = 3) -> list[Figure]:
    # History from 14 months before the anchor month, so every window is full.
    market = Market(seed=7, n_tickers=tickers, days=(MARKET_END - anchor(RANGE[0])).days + 5)
    with scratch_database("a2") as url, psycopg.connect(url, autocommit=True) as conn, \
            ExitStack() as stack:
        # as the step opens them: four connections in all
        extra = [stack.enter_context(psycopg.connect(url, autocommit=True)) for _ in range(3)]
        t0 = time.perf_counter()
        rows = load(conn, market)
        print(f"loaded {rows:,} bars for {tickers} tickers in {time.perf_counter() - t0:.0f}s")
        timings: dict[str, list[float]] = {k: [] for k in ("new 1", "new 5", "force 1", "force 5")}
        results = []

        def job(label: str, dates: list[date], force: bool) -> a2_local_ta.A2Result:
            if not force:  # new dates: nothing of them is stored yet
                conn.execute("TRUNCATE public.daily_snapshots")
            r = a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=dates, force=force), extra=extra)
            timings[label].append(r.seconds)
            print(f"  {label}: {r.seconds:.2f}s (read {r.read_seconds:.2f}, compute {r.compute_seconds:.2f}, "
                  f"write {r.write_seconds:.2f})", file=sys.stderr, flush=True)
            return r

        for _ in range(repeat):
            results.append(job("new 1", [END], False))
            job("new 5", RANGE, False)
            job("force 1", [END], True)   # every row exists: staging + merge, all unchanged
            job("force 5", RANGE, True)
        memory = command_memory(conn, url)
        bars = a2_local_ta.read_bars(conn, anchor(END), END, None)
    p, pos = a2_local_ta.panels(bars)
    on_end = np.flatnonzero(bars.date == np.datetime64(END, "D"))
    params = a2_local_ta.A2Params(dates=[END])
    one_thread = a2_local_ta.A2Params(dates=[END], workers=1)
    kernels, kernels_one, whole, talib = [], [], [], []
    for _ in range(repeat):
        # as the job runs them: every indicator's full series for every ticker, in ticker chunks,
        # keeping the requested date's row; with the job's threads, and with one (the TA-Lib loop's)
        t = time.perf_counter()
        a2_local_ta.compute_cells(p, pos[on_end], bars.ticker[on_end], params)
        kernels.append(time.perf_counter() - t)
        t = time.perf_counter()
        a2_local_ta.compute_cells(p, pos[on_end], bars.ticker[on_end], one_thread)
        kernels_one.append(time.perf_counter() - t)
        t = time.perf_counter()
        talib_loop(p["open"], p["high"], p["low"], p["close"], p["volume"])
        talib.append(time.perf_counter() - t)
        # one call over the whole panel, keeping every output (88 x 264 x 10,655 floats, ~2 GB)
        t = time.perf_counter()
        compute_technical(p["open"], p["high"], p["low"], p["close"], p["volume"])
        compute_price_metrics(p["close"], p["volume"])
        whole.append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in timings.items()}
    mk, mk1, mt = statistics.median(kernels), statistics.median(kernels_one), statistics.median(talib)
    n = results[-1].rows_written
    r = results[-1]
    ratio_new, ratio_force = med["new 5"] / med["new 1"], med["force 5"] / med["force 1"]
    return [
        Figure("a2", f"universe ({n} tickers x {p['close'].shape[0]} bars)", n, "tickers"),
        Figure("a2", "one new date, end to end (median)", med["new 1"], "s", "<= 10", med["new 1"] <= 10),
        Figure("a2", "  read", r.read_seconds, "s"),
        Figure("a2", "  compute", r.compute_seconds, "s"),
        Figure("a2", "  write", r.write_seconds, "s"),
        Figure("a2", "  per ticker", 1000 * med["new 1"] / max(n, 1), "ms"),
        Figure("a2", "5 new dates / one new date", ratio_new, "ratio", "<= 1.5", ratio_new <= 1.5),
        Figure("a2", "one date again with --force (median)", med["force 1"], "s", "<= 10", med["force 1"] <= 10),
        Figure("a2", "5 dates again with --force / one date", ratio_force, "ratio", "<= 1.5", ratio_force <= 1.5),
        Figure("a2", f"kernels alone, as the job runs them ({params.workers} threads, median)", mk, "s"),
        Figure("a2", "kernels alone, one thread (median)", mk1, "s"),
        Figure("a2", "  one whole-panel call keeping every output", statistics.median(whole), "s"),
        Figure("a2", "per-ticker TA-Lib loop, one thread (median)", mt, "s"),
        Figure("a2", "kernels / TA-Lib loop time, one thread each", mk1 / mt, "ratio", "<= 1.0", mk1 / mt <= 1.0),
        *memory,
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickers", type=int, default=11000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print_table(run(args.tickers, args.repeat))


if __name__ == "__main__":
    main()
