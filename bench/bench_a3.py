"""A3 end to end (read, compute, write) for 150 symbols x 2,000 contracts on one date, and the
real command over a range of 20 trading dates.

    venv/bin/python -m bench.bench_a3 [--symbols 150] [--contracts 2000] [--repeat 3]

Writes synthetic chains (the kernel bench's generator) as one options snapshot of watchlist
symbols, then times the A3 job with --force (every run reads, computes and writes everything),
and runs the real command once in a child whose own peak memory is printed (budget < 1 GiB).
Then the snapshot is copied to the 19 trading dates before it (back across a month boundary:
150 x 2,000 x 20 = 6M contracts) and the real command computes all 20 in one run, in a child:
its seconds and its own peak memory (budget < 1 GiB, the one date's: a range must not cost more
memory than the machine of a single date has).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import date
from decimal import Decimal

import numpy as np
import psycopg
from psycopg import sql

from bench.bench_a3_kernels import AS_OF, SNAPSHOT, synthetic_chain
from bench.common import Figure, memory_figure, print_table, scratch_database
from bench.measure import GIB, Measured, load_text, run_command
from kapman.calendar import previous_trading_day
from kapman.config import Settings
from kapman.db import bulk
from kapman.ids import ticker_id
from kapman.jobs import a3_dealer_metrics as a3

COLUMNS = ("time", "ticker_id", "expiration_date", "strike_price", "option_type", "contract_symbol",
           "shares_per_contract", "underlying_price", "open_interest", "volume", "implied_volatility", "delta",
           "gamma")
TYPES = ("timestamptz", "uuid", "date", "numeric", "text", "text", "int4", "float8", "int8", "int8", "float8",
         "float8", "float8")


def _f(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def load(conn: psycopg.Connection, symbols: int, contracts: int) -> int:
    rng = np.random.default_rng(7)
    names = [f"S{i:03d}" for i in range(symbols)]
    with conn.transaction(), conn.cursor() as cur:
        bulk.copy_rows(cur, sql.Identifier("public", "tickers"), ("id", "symbol"), ("uuid", "text"),
                       ((ticker_id(s), s) for s in names))
        bulk.copy_rows(cur, sql.Identifier("public", "watchlists"), ("watchlist_id", "symbol", "source",
                                                                     "effective_date"),
                       ("text", "text", "text", "date"), (("bench", s, "bench", AS_OF) for s in names))
    total = 0
    for name in names:
        frame, spot = synthetic_chain(rng, contracts)
        frame = frame.drop_duplicates(["expiration_date", "strike", "option_type"])
        rows = ((SNAPSHOT, ticker_id(name), r.expiration_date, Decimal(f"{r.strike:.4f}"), r.option_type,
                 f"{r.contract_symbol}{name}", 100, spot, int(r.open_interest), int(r.volume),
                 _f(r.implied_volatility), _f(r.delta), _f(r.gamma)) for r in frame.itertuples())
        with conn.transaction(), conn.cursor() as cur:
            bulk.copy_rows(cur, sql.Identifier("public", "options_chains"), COLUMNS, TYPES, rows)
        total += len(frame)
    conn.execute("VACUUM ANALYZE public.options_chains")
    return total


#: Trading dates of the range: the snapshot's date and the 19 before it (back into May).
RANGE_DATES = 20


def range_dates(last: date = AS_OF, count: int = RANGE_DATES) -> list[date]:
    days = [last]
    while len(days) < count:
        days.append(previous_trading_day(days[-1]))
    return days[::-1]


def copy_snapshot(conn: psycopg.Connection, days: list[date]) -> int:
    """The snapshot of AS_OF again at the same time of day on each of ``days`` (but AS_OF's own)."""
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS[1:]))
    copied = 0
    for day in days:
        if day != AS_OF:
            copied += conn.execute(sql.SQL("INSERT INTO public.options_chains (time, {cols}) "
                                           "SELECT time - %s, {cols} FROM public.options_chains WHERE time = %s"
                                           ).format(cols=cols), (AS_OF - day, SNAPSHOT)).rowcount
    conn.execute("VACUUM ANALYZE public.options_chains")
    return copied


def command(url: str, dates: list[str]) -> Measured:
    """The real A3 command with --force in a child measured alone."""
    measured = run_command("scripts.run_a3_dealer_metrics",
                           [*dates, "--force", "--workers", "2", "--db-url", url, "--json", "-q"],
                           {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"})
    if measured.returncode != 0:
        raise SystemExit(f"A3 failed: {measured.stderr}")
    return measured


def range_figures(url: str, total: int) -> list[Figure]:
    """The real command over RANGE_DATES trading dates across a month boundary: seconds and memory."""
    days = range_dates()
    with psycopg.connect(url, autocommit=True) as conn:
        contracts = total + copy_snapshot(conn, days)
    measured = command(url, ["--start-date", days[0].isoformat(), "--end-date", days[-1].isoformat()])
    load = load_text()
    span = f"{len(days)} dates {days[0]:%m-%d}..{days[-1]:%m-%d}"
    print(f"  A3 command, {span}: {contracts:,} contracts, {measured.wall:.1f}s wall, main process "
          f"{measured.main_mib:,.0f} MiB (load {load})", file=sys.stderr, flush=True)
    return [
        Figure("a3", f"command, {span} ({contracts:,} contracts), wall (load {load})", measured.wall, "s"),
        memory_figure("a3", f"command, {span},", measured.main_mib, GIB, "main process", load),
    ]


def run(symbols: int = 150, contracts: int = 2000, repeat: int = 3) -> list[Figure]:
    with scratch_database("a3") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            total = load(conn, symbols, contracts)
        settings = Settings(database_url=url)
        results = [a3.run(settings, a3.A3Params(dates=[AS_OF], force=True, workers=2)) for _ in range(repeat)]
        one = command(url, ["--date", AS_OF.isoformat()])
        load_then = load_text()
        ranged = range_figures(url, total)
    seconds = statistics.median(r.elapsed for r in results)
    last = results[-1]
    return [
        Figure("a3", f"contracts ({symbols} symbols)", total, "contracts"),
        Figure("a3", "one date, end to end (median)", seconds, "s", "<= 3", seconds <= 3),
        Figure("a3", "throughput", total / seconds, "contracts/s"),
        Figure("a3", "statuses", last.details.statuses.get("FULL", 0), "FULL"),
        Figure("a3", f"command wall time (interpreter start-up included, load {load_then})", one.wall, "s"),
        memory_figure("a3", "command", one.main_mib, GIB, "main process", load_then),
        *([memory_figure("a3", "command", one.children_mib, GIB, "largest child process", load_then)]
          if one.children_mib else []),
        *ranged,
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--symbols", type=int, default=150)
    p.add_argument("--contracts", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print_table(run(args.symbols, args.contracts, args.repeat))


if __name__ == "__main__":
    main()
