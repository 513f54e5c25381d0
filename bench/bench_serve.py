"""Serving the warehouse: the data API, the screener and the Parquet export, on a full-market universe.

    venv/bin/python -m bench.bench_serve [--tickers 11000] [--repeat 3]

Loads two years of bars for every sandbox ticker, A2 for every ticker on the last date and for one
symbol over the whole two years (the job itself), then times: one symbol's two years of bars plus
its A2 columns (kapman.data, target < 100 ms), a full-market date of A2 columns (< 1 s), a screen of
a full-market date (< 1 s), and the export to Parquet of the full market's A2 over EXPORT_DATES
dates (rows a second with the default two connections, the full window's 5.4M rows at that rate,
<= 120 s; bytes a row, <= 600) with an average of one indicator per date over the export in DuckDB
(< 1 s).  The export's earlier dates hold copies of the last date's documents (the cost is per row
and document, not per value; computing them would be A2's benchmark, not this one).

Beside each wall-clock figure, the CPU seconds it took, the server's (its backend process, when the
server runs on this machine) plus this process's: on a machine other work shares, the wall clock
moves with the load, the CPU cost much less.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import psycopg

from bench.common import Figure, median_seconds, print_table, scratch_database
from kapman import clock, data, export
from kapman.calendar import trading_days
from kapman.data import api
from kapman.data.expression import parse
from kapman.jobs import a2_local_ta
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market
from kapman.screen import screen

END = date(2025, 12, 19)
SYMBOL = "AAPL"
HISTORY_DAYS = 740


def load(conn: psycopg.Connection, market: Market, history: list[date]) -> None:
    load_tickers(conn, market)
    load_bars(conn, market)
    conn.execute("VACUUM ANALYZE public.ohlcv")
    a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=[END]))
    a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=history, symbols=[SYMBOL]))
    conn.execute("VACUUM ANALYZE public.daily_snapshots")


class CpuClock:
    """CPU seconds of this process plus those of ``conn``'s backend (read from /proc: a server on this
    machine; None elsewhere)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        self.stat = Path(f"/proc/{pid}/stat")

    def server(self) -> float | None:
        try:
            fields = self.stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def per_call(self, fn: Callable[[], object], repeat: int) -> float | None:
        server, mine = self.server(), time.process_time()
        for _ in range(repeat):
            fn()
        after = self.server()
        if server is None or after is None:
            return None
        return (after - server + time.process_time() - mine) / repeat


def data_figures(conn: psycopg.Connection, start: date, repeat: int) -> list[Figure]:
    def symbol_history() -> None:
        data.bars(conn, SYMBOL, start=start, end=END)
        data.snapshots(conn, SYMBOL, start=start, end=END, a3=False)

    def market_date() -> None:
        data.snapshots(conn, date=END, a3=False, arrow=True)

    one = median_seconds(symbol_history, repeat)
    market = median_seconds(market_date, repeat)
    cpu = CpuClock(conn)
    one_cpu, market_cpu = cpu.per_call(symbol_history, max(repeat, 5)), cpu.per_call(market_date, repeat)
    rows = len(data.snapshots(conn, date=END, columns=["rsi"]))
    return [Figure("serve", f"data: {SYMBOL} two years of bars + A2", one * 1000, "ms", "< 100", one < 0.1),
            Figure("serve", f"data: {SYMBOL} two years of bars + A2, CPU (server + client)",
                   one_cpu * 1000 if one_cpu is not None else None, "ms"),
            Figure("serve", f"data: a full-market date of A2 columns ({rows:,} rows)", market, "s", "< 1",
                   market < 1),
            Figure("serve", "data: a full-market date of A2 columns, CPU (server + client)", market_cpu, "s")]


def run(tickers: int = 11000, repeat: int = 3) -> list[Figure]:
    market = Market(seed=7, n_tickers=tickers, days=HISTORY_DAYS)
    history = list(trading_days(date(END.year - 2, END.month, END.day), END))
    with scratch_database("serve") as url, psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        load(conn, market, history)
        print(f"loaded {tickers} tickers, A2 of {len(history)} dates for {SYMBOL} in "
              f"{time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
        figures = data_figures(conn, history[0], repeat)
        figures += extra_figures(conn, url, repeat, history)
    return figures


def extra_figures(conn: psycopg.Connection, url: str, repeat: int, history: list[date]) -> list[Figure]:
    """The screener's and the export's figures."""
    return screen_figures(conn, repeat) + export_figures(url, conn, history)


#: The full market's A2 over the retention window: 11,000 tickers x 502 dates (the issue's measure).
FULL_WINDOW_ROWS = 5_400_000
#: Dates of full-market A2 the export is timed on: enough batches for both of its connections.
EXPORT_DATES = 20


def copy_last_date(conn: psycopg.Connection, days: list[date]) -> None:
    """The last date's A2 documents stored again under each of ``days`` (where the row is not there yet)."""
    for day in days:
        conn.execute("INSERT INTO public.daily_snapshots (time, ticker_id, technical_indicators_json, "
                     "price_metrics_json, ta_computed_at, ta_version) SELECT s.time - %s * interval '1 day', "
                     "s.ticker_id, s.technical_indicators_json, s.price_metrics_json, s.ta_computed_at, "
                     "s.ta_version FROM public.daily_snapshots s WHERE s.time = %s ON CONFLICT DO NOTHING",
                     ((END - day).days, clock.close_of(END)))
    conn.execute("VACUUM ANALYZE public.daily_snapshots")


def export_figures(url: str, conn: psycopg.Connection, history: list[date]) -> list[Figure]:
    import duckdb

    span = history[-EXPORT_DATES:]
    copy_last_date(conn, span[:-1])
    with tempfile.TemporaryDirectory() as directory:
        mine, started = time.process_time(), time.perf_counter()
        result = export.export(url, export.ExportParams(Path(directory), ["daily_snapshots"],
                                                        api.Dates(span[0], span[-1])))
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - mine
        stats = result.details.tables["daily_snapshots"]
        per_row = stats["bytes_per_row"]
        export.export(url, export.ExportParams(Path(directory), ["daily_snapshots"]))     # the other dates
        query = (f"SELECT date, avg(\"momentum.rsi.rsi\") FROM '{directory}/daily_snapshots/*.parquet' "
                 "GROUP BY 1 ORDER BY 1")
        average = median_seconds(lambda: duckdb.sql(query).fetchall(), 3)
    rate = stats["rows"] / seconds
    projected = FULL_WINDOW_ROWS / rate
    return [Figure("serve", f"export: {len(span)} full-market dates of flattened A2 ({stats['rows']:,} rows, "
                   "2 connections)", rate, "rows/s", ">= 45,000", rate >= 45_000),
            Figure("serve", "export: client CPU a row (reading, parsing, writing Parquet)",
                   client_cpu / stats["rows"] * 1e6, "us"),
            Figure("serve", "export: the full window's A2 (5.4M rows) at that rate", projected, "s", "<= 120",
                   projected <= 120),
            Figure("serve", "export: flattened A2, zstd", per_row, "bytes/row", "<= 600", per_row <= 600),
            Figure("serve", "export: average of one indicator per date over the export in DuckDB", average, "s",
                   "< 1", average < 1)]


def screen_figures(conn: psycopg.Connection, repeat: int) -> list[Figure]:
    expression = parse("rsi < 30 and (adx >= 20 or not close < trend.sma.sma_50) and rvol > 0.5")
    found: list[int] = []
    seconds = median_seconds(lambda: found.append(screen(conn, expression, END)[2].num_rows), repeat)
    return [Figure("serve", f"screen: a full-market date, 5 columns ({found[-1]:,} matches)", seconds, "s", "< 1",
                   seconds < 1)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickers", type=int, default=11000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print_table(run(args.tickers, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
