"""OHLCV ingestion against bare COPY and per-batch executemany upserts, in one run.

    venv/bin/python -m bench.bench_ohlcv [--tickers 11000] [--days 365] [--repeat 3]

Generates a full-market year into a flat-file mirror, loads it with the real command
(`python -m scripts.ingest_ohlcv base`, a child process so its peak memory is its own, measured
by bench/measure.py whatever ran before; its rate
is rows over the seconds the command itself reports, i.e. without interpreter start-up), and in
the same run times a bare binary COPY of exactly the same rows into an empty hypertable (on 1 and
2 parallel streams; the ratio uses the faster) and
`executemany` upserts in batches of 1,000.  Prints medians and the two ratios with targets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import Figure, memory_figure, print_table, scratch_database
from bench.measure import GIB, load_text, run_command
from kapman.db import bulk
from kapman.ingest.daybars import parse_day_file
from kapman.ingest.ohlcv_write import COLUMNS, encode_day, match_rows
from kapman.ingest.tickermap import load_ticker_map
from kapman.sandbox.dbload import load_tickers
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror

PREFIX = "us_stocks_sip/day_aggs_v1"
EXECUTEMANY_DAYS = 10   # the slow baseline runs on a sample of days; its rate is what is compared
BATCH = 1000


def parsed_days(mirror: Path, market: Market, conn: psycopg.Connection) -> list[tuple]:
    """Every day's accepted, known rows as COPY-ready arrays (what the ingest writes)."""
    tickers = load_ticker_map(conn)
    out = []
    for day in market.trading_days:
        key = market.flat_file_key(day)
        p = parse_day_file((mirror / key).read_bytes(), key)
        k, ids, _ = match_rows(tickers, p.symbols)   # the ingest's own rows, in its order
        out.append((day, ids, p, k))
    return out


#: Bare COPY runs on this many parallel streams (each its own connection) and the best counts:
#: the limit is the best the machine does, whatever the ingest's own stream count.
BARE_STREAMS = (1, 2)


def bare_copy(url: str, days: list[tuple], streams: int = 1) -> tuple[float, int]:
    """A bare binary COPY of every day's rows into an empty hypertable, one transaction per day,
    the days dealt round-robin over ``streams`` connections copying at once: the same columns and
    bytes the ingest writes (``encode_day``, vwap included), encoded before the clock starts."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bare_ohlcv")
        conn.execute("CREATE TABLE bare_ohlcv (LIKE public.ohlcv INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                     "INCLUDING INDEXES)")
        conn.execute("SELECT create_hypertable('bare_ohlcv', by_range('date', INTERVAL '30 days'))")
        payloads = [encode_day(day, ids, p, k) for day, ids, p, k in days]   # the ingest's own bytes
        conns = [psycopg.connect(url, autocommit=True) for _ in range(streams)]

        def stream(i: int) -> None:
            with conns[i].cursor() as cur:
                for payload in payloads[i::streams]:
                    with conns[i].transaction():
                        bulk.copy_binary(cur, sql.Identifier("bare_ohlcv"), COLUMNS, payload)

        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(streams) as pool:
                list(pool.map(stream, range(streams)))
            seconds = time.perf_counter() - started
        finally:
            for c in conns:
                c.close()
        rows = conn.execute("SELECT count(*) FROM bare_ohlcv").fetchone()[0]  # type: ignore[index]
        conn.execute("DROP TABLE bare_ohlcv")
    return seconds, rows


def executemany_upserts(url: str, days: list[tuple]) -> tuple[float, int]:
    stmt = ("INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume, transactions, vwap) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ticker_id, date) DO UPDATE SET "
            "open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, "
            "volume = EXCLUDED.volume, transactions = EXCLUDED.transactions, vwap = EXCLUDED.vwap")
    rows = [(uuid.UUID(bytes=ids[i].tobytes()), day, float(p.open[j]), float(p.high[j]), float(p.low[j]),
             float(p.close[j]), float(p.volume[j]), _or_none(p.transactions[j], int),
             _or_none(p.vwap[j], float) if len(p.vwap) else None)
            for day, ids, p, k in days for i, j in enumerate(k)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE ohlcv")
        started = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), BATCH):
                with conn.transaction():
                    cur.executemany(stmt, rows[i:i + BATCH])
        seconds = time.perf_counter() - started
        conn.execute("TRUNCATE ohlcv")
    return seconds, len(rows)


def _or_none(value: float, kind: type) -> object:
    return None if value != value else kind(value)   # NaN: the file had no value


def ingest_cli(url: str, mirror: Path, as_of: str, days: int) -> tuple[dict, float, float]:
    """Run the real command in a child; returns (summary, wall seconds, that child's peak RSS in MiB)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE ohlcv, ingest_files")
    env = {**os.environ, "FLATFILES_MIRROR_DIR": str(mirror), "KAPMAN_NOW": as_of,
           "KAPMAN_ENV_FILE": "/nonexistent"}
    run = run_command("scripts.ingest_ohlcv", ["base", "--days", str(days), "--db-url", url, "--json", "-q"], env)
    if run.returncode != 0:
        raise SystemExit(f"ingest failed (exit {run.returncode}): {run.stdout[-2000:]} {run.stderr}")
    return json.loads(run.stdout), run.wall, run.peak_mib


def run(tickers: int = 11000, days: int = 365, repeat: int = 3) -> list[Figure]:
    market = Market(seed=2024, n_tickers=tickers, days=days)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="kapman-bench-") as tmp, scratch_database("ohlcv") as url:
        mirror = Path(tmp)
        started = time.perf_counter()
        write_mirror(market, mirror)
        print(f"generated {len(market.trading_days)} day files for {tickers} tickers in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
        with psycopg.connect(url, autocommit=True) as conn:
            load_tickers(conn, market)
            prepared = parsed_days(mirror, market, conn)
        total_rows = sum(len(k) for *_, k in prepared)
        as_of = market.trading_days[-1].isoformat()
        # base --days N covers [as_of - N, as_of]: exactly the market's trading days, none missing.
        calendar_days = (market.trading_days[-1] - market.trading_days[0]).days
        e2e, walls, peaks, loads = [], [], [], []
        copies: dict[int, list[float]] = {n: [] for n in BARE_STREAMS}
        for _ in range(repeat):   # interleaved, so neither side gets the warmer server
            for n in BARE_STREAMS:
                copies[n].append(bare_copy(url, prepared, n)[0])
            summary, wall, peak = ingest_cli(url, mirror, as_of, calendar_days)
            assert summary["rows_inserted"] == total_rows, (summary["rows_inserted"], total_rows)
            loads.append(load_text())
            e2e.append(summary["seconds"])
            walls.append(wall)
            peaks.append(peak)
        sample = prepared[:EXECUTEMANY_DAYS]
        em_seconds, em_rows = executemany_upserts(url, sample)
    e2e_rate = total_rows / sorted(e2e)[len(e2e) // 2]
    copy_rates = {n: total_rows / sorted(v)[len(v) // 2] for n, v in copies.items()}
    best = max(copy_rates, key=copy_rates.__getitem__)
    copy_rate = copy_rates[best]
    em_rate = em_rows / em_seconds
    figures += [
        Figure("ohlcv", f"rows ({len(prepared)} files)", total_rows, "rows"),
        Figure("ohlcv", "end-to-end ingest (median)", e2e_rate, "rows/s"),
        Figure("ohlcv", "ingest command wall time (median)", sorted(walls)[len(walls) // 2], "s"),
        *(Figure("ohlcv", f"bare binary COPY, {n} stream(s) (median)", r, "rows/s") for n, r in copy_rates.items()),
        Figure("ohlcv", "executemany upserts", em_rate, "rows/s"),
        Figure("ohlcv", f"ingest / bare COPY on its best stream count ({best})", e2e_rate / copy_rate, "ratio",
               ">= 0.7", e2e_rate / copy_rate >= 0.7),
        Figure("ohlcv", "ingest / executemany", e2e_rate / em_rate, "ratio", ">= 10", e2e_rate / em_rate >= 10),
        memory_figure("ohlcv", "ingest", max(peaks), GIB, "the command, largest of the runs", loads[-1]),
    ]
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickers", type=int, default=11000)
    p.add_argument("--days", type=int, default=365, help="calendar days of history (365 = ~252 files)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print_table(run(args.tickers, args.days, args.repeat))


if __name__ == "__main__":
    main()
