"""A one-month OHLCV backfill into compressed chunks against the same into uncompressed ones.

    venv/bin/python -m bench.bench_lifecycle [--tickers 3000]

Community edition only (compression needs ``timescaledb.license = timescale``); elsewhere it
reports that it skipped and why.  In one run: a year of the sandbox market is loaded with the real
command, then one month is republished (every volume changed, so every row is rewritten) and
backfilled with ``--force`` twice: once with that month's chunks uncompressed, once with them
compressed (by hand: as a month past the 120-day window would be).  Between the two the month is restored to its first
version.  The figure is the compressed rate over the uncompressed one (target >= 0.5).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import psycopg

from bench.common import Figure, edition_license, edition_skip, print_table, scratch_database
from kapman.sandbox.dbload import load_tickers
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror

NAME = "lifecycle"
#: The backfilled month starts this many days before the market's last day: inside the 120-day
#: compression window, so the command's own lifecycle step (after a successful run) neither
#: compresses it nor counts compression time into either figure; the bench compresses it by hand.
MONTH_AGO_DAYS = 90
TARGET = 0.5


def _republish(mirror: Path, market: Market, days: list[date], factor: int) -> None:
    """Rewrite each day's file with every volume multiplied by ``factor`` (1 restores it)."""
    for day in days:
        path = mirror / market.flat_file_key(day)
        lines = market.flat_file_csv_gz(day)
        text = gzip.decompress(lines).decode()
        out = [text.splitlines()[0]]
        for line in text.splitlines()[1:]:
            cells = line.split(",")
            cells[1] = str(float(cells[1]) * factor).removesuffix(".0")
            out.append(",".join(cells))
        path.write_bytes(gzip.compress(("\n".join(out) + "\n").encode(), mtime=factor))


def _ingest(url: str, mirror: Path, as_of: str, *args: str) -> dict:
    env = {**os.environ, "FLATFILES_MIRROR_DIR": str(mirror), "KAPMAN_NOW": as_of,
           "KAPMAN_ENV_FILE": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_ohlcv", *args, "--db-url", url, "--json", "-q"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"ingest_ohlcv {' '.join(args)} failed: {proc.stderr or proc.stdout}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _set_compressed(url: str, start: date, end: date, compressed: bool) -> int:
    """(De)compress the ohlcv chunks that hold [start, end]; returns how many changed."""
    fn = "compress_chunk" if compressed else "decompress_chunk"
    flag = "if_not_compressed" if compressed else "if_compressed"
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT {fn}(format('%%I.%%I', chunk_schema, chunk_name)::regclass, {flag} => true) "
            "FROM timescaledb_information.chunks WHERE hypertable_name = 'ohlcv' "
            "AND range_start <= %s AND range_end > %s AND is_compressed <> %s",
            (end, start, compressed)).fetchall()
    return len(rows)


def _rows(summary: dict) -> int:
    counts = summary.get("counts") or {}
    return int(counts.get("written") or summary.get("rows_inserted", 0) + summary.get("rows_updated", 0))


def run(tickers: int = 3000) -> list[Figure]:
    lic = edition_license(NAME)
    if lic != "timescale":
        reason = edition_skip(lic)
        print(f"{NAME}: skipped: {reason}", file=sys.stderr)
        return [Figure(NAME, f"compressed / uncompressed backfill (skipped: {reason})", None, "ratio")]
    market = Market(seed=2026, n_tickers=tickers, days=365)
    last = market.trading_days[-1]
    start = last - timedelta(days=MONTH_AGO_DAYS)
    month = [d for d in market.trading_days if start <= d < start + timedelta(days=30)]
    as_of = last.isoformat()
    with tempfile.TemporaryDirectory(prefix="kapman-bench-") as tmp, scratch_database(NAME) as url:
        mirror = Path(tmp)
        write_mirror(market, mirror)
        with psycopg.connect(url, autocommit=True) as conn:
            load_tickers(conn, market)
        # the base window starts on the market's first trading day: a day before it has no file
        _ingest(url, mirror, as_of, "base", "--days", str((last - market.trading_days[0]).days))
        window = ("backfill", "--start", month[0].isoformat(), "--end", month[-1].isoformat(), "--force")
        seconds: dict[bool, float] = {}
        rows: dict[bool, int] = {}
        for compressed in (False, True):
            _republish(mirror, market, month, 1)
            _ingest(url, mirror, as_of, *window)                 # the first version back in place
            changed = _set_compressed(url, month[0], month[-1], compressed)
            print(f"{NAME}: {changed} chunk(s) {'compressed' if compressed else 'decompressed'}", file=sys.stderr)
            _republish(mirror, market, month, 2)
            summary = _ingest(url, mirror, as_of, *window)
            seconds[compressed], rows[compressed] = float(summary["seconds"]), _rows(summary)
    rate = {k: rows[k] / seconds[k] for k in seconds}
    ratio = rate[True] / rate[False]
    return [
        Figure(NAME, f"backfill of {len(month)} files into uncompressed chunks", rate[False], "rows/s"),
        Figure(NAME, f"backfill of {len(month)} files into compressed chunks", rate[True], "rows/s"),
        Figure(NAME, "compressed / uncompressed backfill", ratio, "ratio", f">= {TARGET}", ratio >= TARGET),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickers", type=int, default=3000)
    args = p.parse_args()
    print_table(run(args.tickers))


if __name__ == "__main__":
    main()
