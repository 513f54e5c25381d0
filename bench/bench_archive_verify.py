"""The options archive's full verification at a warehouse's scale: 150 symbols x 20 snapshots.

    venv/bin/python -m bench.bench_archive_verify [--symbols 150] [--snapshots 20] [--contracts 2000]

Builds the archive with the sandbox in a scratch database (kapman_bench_verify_*, dropped after):
one real ``scripts.ingest_options`` run of ``symbols`` chains against the sandbox REST server
(``--no-archive``), the snapshot copied in the table to ``snapshots`` trading days, then every
snapshot archived by the export's catch-up into a scratch directory.  Then it times each depth of
``kapman.archive.coverage.check``: the full verification (every file read and hashed, every stored
row read by binary COPY and hashed per chain), the repave prompt's (files hashed), and the one
every options run's catch-up makes (manifests, the store's listing, row counts).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import scratch_database
from bench.measure import load_text

API_KEY = "bench-key"


def run(symbols: int = 150, snapshots: int = 20, contracts: int = 2000) -> list[tuple[str, float, str]]:
    from kapman.archive import export_snapshots, inventory
    from kapman.archive.coverage import Depth
    from kapman.config import Settings
    from kapman.sandbox.dbload import load_tickers
    from kapman.sandbox.market import OPTIONABLE, Market
    from kapman.sandbox.rest import SandboxRestServer

    market = Market(seed=7, n_tickers=max(300, 2 * symbols), days=30, contracts_per_chain=contracts)
    names = [lst.symbol for lst in market.listings
             if lst.type in OPTIONABLE and not lst.delisted and lst.symbol == lst.symbol.upper()][:symbols]
    figures: list[tuple[str, float, str]] = []
    print(f"load at start: {load_text()}", file=sys.stderr, flush=True)
    with scratch_database("verify") as url, SandboxRestServer(market, api_key=API_KEY) as rest, \
            tempfile.TemporaryDirectory(prefix="kapman-bench-verify-") as tmp:
        with psycopg.connect(url, autocommit=True) as conn:
            load_tickers(conn, market)
            with conn.cursor() as cur:  # the options run's scope
                cur.executemany("INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
                                "VALUES ('bench', %s, 'bench', %s)", [(s, market.now.date()) for s in names])
        env = {**os.environ, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": API_KEY,
               "POLYGON_RATE_LIMIT": "1000", "KAPMAN_NOW": market.now.isoformat(), "KAPMAN_ENV_FILE": "/nonexistent"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scripts.ingest_options", "--db-url", url, "--no-archive", "-q"],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"ingest_options exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        figures.append(("options run (one snapshot, --no-archive)", time.perf_counter() - started, "s"))
        with psycopg.connect(url, autocommit=True) as conn:
            for k in range(1, snapshots):  # earlier snapshots: the same chains on earlier days
                conn.execute("INSERT INTO options_chains SELECT time - %s * interval '1 day', ticker_id, "
                             "expiration_date, strike_price, option_type, contract_symbol, shares_per_contract, "
                             "underlying_price, bid, "
                             "ask, last, volume, open_interest, implied_volatility, delta, gamma, theta, vega, "
                             "created_at, updated_at FROM options_chains WHERE time = (SELECT max(time) FROM "
                             "options_chains)", (k,))
            conn.execute("VACUUM ANALYZE options_chains")
            rows = conn.execute("SELECT count(*) FROM options_chains").fetchone()[0]  # type: ignore[index]
        settings = Settings(database_url=url, archive_location=str(Path(tmp, "archive")),
                            polygon_base_url=rest.base_url)
        started = time.perf_counter()
        report = export_snapshots(settings, [])
        if not report.ok:
            raise RuntimeError(report.line())
        figures.append((f"archive of {report.snapshots} snapshots, {report.files} files, {report.rows:,} rows, "
                        f"{report.bytes / 1e6:.0f} MB", time.perf_counter() - started, "s"))
        with psycopg.connect(url, autocommit=True) as conn:
            for depth, what in ((Depth.CONTENT, "full verification (files and stored rows hashed)"),
                                (Depth.FILES, "the repave prompt's check (files hashed)"),
                                (Depth.ROWS, "the catch-up's check (manifests, listing, row counts)")):
                load = load_text()
                started = time.perf_counter()
                found = inventory.check(settings, conn, depth)
                seconds = time.perf_counter() - started
                if found.covered != symbols * snapshots or found.chains != found.covered:
                    raise RuntimeError(found.line())
                figures.append((f"{what}: {found.chains:,} chains, {rows:,} rows (load {load})", seconds, "s"))
    print(f"load at end: {load_text()}", file=sys.stderr, flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_archive_verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--symbols", type=int, default=150)
    p.add_argument("--snapshots", type=int, default=20)
    p.add_argument("--contracts", type=int, default=2000)
    args = p.parse_args(argv)
    for name, value, unit in run(args.symbols, args.snapshots, args.contracts):
        print(f"{name:<90} {value:>9.2f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
