"""Options ingestion end to end: fetch concurrency against the ideal, writes against a bare COPY.

    venv/bin/python -m bench.bench_options [--symbols 150] [--contracts 2000] [--concurrency 8]
                                           [--workers N] [--latency 0.05] [--repeat 3]

The admin URL comes from KAPMAN_BENCH_DATABASE_URL; a scratch database kapman_bench_<random> is
created, rebuilt and dropped.  The sandbox REST server runs in a child interpreter (so its work
does not share our GIL) with ``latency`` seconds on every request, and caches its rendered pages:
the figures measure KapMan, not the stand-in for the vendor.  Figures are medians of ``repeat``:

- wall / ideal, where ideal = pages x latency / concurrency (target <= 1.3 at concurrency 8);
- the write path of a replay (per symbol, as the job writes: the binary COPY payload a worker
  encodes, COPYed into the connection's staging table, compared with the stored rows, and the
  changed rows rewritten, keeping their created_at; every row's bid changed, so every row is
  rewritten) against a bare binary COPY of the same number of rows, per symbol, into the emptied
  hypertable (target ratio >= 0.7).  A first write is a bare COPY itself, so it is not what this
  times.  The payloads are encoded from the stored rows before either is timed.

Then bench/bench_archive.py runs the real command in a child (its own peak memory, the archive's
cost) and times a restore from that archive against a bare COPY of the same rows.

Each run also reports (stderr) the CPU seconds of this process, of its worker processes (the
children other than the server), of the sandbox server and of the whole machine (from /proc),
because on a small shared host the wall time depends on them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import cpu_seconds

DEFAULT_ADMIN = "postgresql://kapman:kapman-local-dev@127.0.0.1:5432/postgres"
API_KEY = "bench-key"
#: High enough that the shared limiter is never what is measured.
RATE_LIMIT = 1000.0
WALL_TARGET, WRITE_TARGET = 1.3, 0.7


# ---- the child: a sandbox REST server with warm, cached pages ---------------------------------
def serve(symbols: int, contracts: int, latency: float) -> None:
    from kapman.sandbox import endpoints, rest
    from kapman.sandbox import market as market_mod
    from kapman.sandbox.market import OPTIONABLE, Market

    market = Market(seed=7, n_tickers=max(300, 2 * symbols), days=30, contracts_per_chain=contracts)
    names = [lst.symbol for lst in market.listings if lst.type in OPTIONABLE and not lst.delisted][:symbols]
    market_mod._CHAIN_CACHE = len(names) + 16  # keep every chain of the run warm
    chains = {s: market.option_chain(s, market.now) for s in names}
    sorted_cache: dict[tuple, list[dict]] = {}
    original = endpoints.option_snapshots

    def option_snapshots(m: Any, underlying: str, query: dict, now: Any) -> list[dict]:
        key = (underlying, tuple(sorted(query.items())), now)
        if key not in sorted_cache:
            sorted_cache[key] = original(m, underlying, query, now)
        return sorted_cache[key]

    pages: dict[tuple, bytes] = {}
    page = rest._Handler._page

    def cached_page(
        self: Any,
        path: str,
        query: dict,
        results: list,
        offset: int,
        limit: int,
        request_id: str,
        *,
        with_count: bool,
    ) -> None:
        if with_count or self.sandbox.faults.loops(path):
            return page(self, path, query, results, offset, limit, request_id, with_count=with_count)
        key = (path, tuple(sorted(query.items())), offset, limit)
        if key not in pages:
            pages[key] = json.dumps(results[offset : offset + limit]).encode()
        tail = {"status": "OK", "request_id": request_id}
        if offset + limit < len(results):
            tail["next_url"] = self._next_url(path, query, offset + limit)
        self._send(200, b'{"results": ' + pages[key] + b", " + json.dumps(tail).encode()[1:])

    endpoints.option_snapshots = option_snapshots  # type: ignore[assignment]
    rest._Handler._page = cached_page  # type: ignore[method-assign]
    # The handler writes the headers and the body separately.  With Nagle's algorithm on, a body
    # smaller than a segment (a chain's last page) waits for the ACK of the headers, which the
    # client delays (~40 ms on Linux): one stall per symbol that a real API front end (nginx sets
    # TCP_NODELAY) does not have, and that would be charged to KapMan.
    rest._Handler.disable_nagle_algorithm = True
    with rest.SandboxRestServer(market, api_key=API_KEY) as server:
        for symbol, chain in chains.items():  # render every page before the clock starts
            results = option_snapshots(market, symbol, {"limit": "250"}, server.now)
            for offset in range(0, len(chain), 250):
                key = (f"/v3/snapshot/options/{symbol}", (("limit", "250"),), offset, 250)
                pages[key] = json.dumps(results[offset : offset + 250]).encode()
        server.faults.latency(latency)
        print(
            json.dumps({"base_url": server.base_url, "symbols": names, "now": server.now.isoformat()}),
            flush=True,
        )
        sys.stdin.read()  # until the parent closes our stdin


# ---- the parent ------------------------------------------------------------------------------
def _bare_copy(conn: psycopg.Connection, chains: list[Any]) -> float:
    from kapman.db import bulk
    from kapman.ingest.options.normalise import COLUMNS

    conn.execute("TRUNCATE public.options_chains")
    started = time.perf_counter()
    for chain in chains:
        with conn.transaction(), conn.cursor() as cur:
            bulk.copy_binary(cur, sql.Identifier("public", "options_chains"), COLUMNS, chain.payload)
    return time.perf_counter() - started


def _write_path(conn: psycopg.Connection, chains: list[Any]) -> float:
    """A replay over the stored snapshots: every symbol's rows exist, so each write goes through
    staging, the comparison with the stored rows and the merge (a first write is a bare COPY)."""
    from kapman.ingest.options import write_chain

    started = time.perf_counter()
    for chain in chains:
        write_chain(conn, chain)
    return time.perf_counter() - started


def _stored_chains(conn: psycopg.Connection, changed: str | None = None) -> list[Any]:
    """Each symbol's stored rows as the payload a worker would have encoded for them; with
    ``changed``, that price column a cent higher in every row (a republished snapshot)."""
    from kapman.ingest.options.normalise import COLUMNS, NormalisedChain
    from kapman.ingest.options.process import encode_chain

    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    if changed:
        cols = sql.SQL(", ").join(sql.SQL("coalesce({0}, 0) + 0.01 AS {0}").format(sql.Identifier(c)) if c == changed
                                  else sql.Identifier(c) for c in COLUMNS)
    rows = conn.execute(
        sql.SQL("SELECT {} FROM public.options_chains ORDER BY ticker_id").format(cols)
    ).fetchall()
    return [
        encode_chain(NormalisedChain(rows=list(group)), snapshot, ticker_id)
        for (snapshot, ticker_id), group in itertools.groupby(rows, key=lambda r: (r[0], r[1]))
    ]


def _cpu_now(server_pid: int | None) -> tuple[float, float, float, float]:
    """CPU seconds so far: this process, its ended children (the worker processes of finished runs:
    the server is still running), the sandbox server, the whole machine."""
    times = os.times()
    server = cpu_seconds(server_pid) if server_pid else float("nan")
    return cpu_seconds(), times.children_user + times.children_system, server, cpu_seconds(0)


def _measure(
    url: str,
    info: dict,
    concurrency: int,
    workers: int | None,
    latency: float,
    repeat: int,
    server_pid: int | None = None,
) -> dict[str, list[float]]:
    from kapman.ingest.options import ingest_options
    from kapman.ingest.options.snapshot import snapshot_time
    from kapman.ingest.tickers import ingest_tickers
    from kapman.ingest.watchlist_scope import resolve_scope
    from kapman.ingest.watchlists import ingest_watchlists
    from kapman.providers.http import PolygonHTTP
    from kapman.providers.polygon import PolygonClient

    figures: dict[str, list[float]] = {
        k: [] for k in ("wall", "ideal", "ratio", "in_run", "merge", "bare", "write")
    }
    client = PolygonClient(
        PolygonHTTP(info["base_url"], API_KEY, rate_limit=RATE_LIMIT, pool_size=concurrency)
    )
    with psycopg.connect(url, autocommit=True) as conn, tempfile.TemporaryDirectory() as tmp:
        ingest_tickers(conn, client, force=True)
        Path(tmp, "bench.txt").write_text("\n".join(info["symbols"]) + "\n")
        ingest_watchlists(conn, Path(tmp))
        scope = resolve_scope(conn)
        for i in range(repeat):
            conn.execute("TRUNCATE public.options_chains, public.ingest_runs")
            cpu0 = _cpu_now(server_pid)
            result = ingest_options(
                url,
                client,
                scope,
                snapshot_time(),
                concurrency=concurrency,
                workers=workers,
                enforce_retention=False,
            )
            outcome = result.step_result()
            if outcome.exit_code != 0:
                raise RuntimeError(outcome.summary())
            cpu = [b - a for a, b in zip(cpu0, _cpu_now(server_pid), strict=True)]
            ideal = result.pages * latency / concurrency
            chains, republished = _stored_chains(conn), _stored_chains(conn, changed="bid")
            rows = sum(c.rows for c in chains)
            merge_s, bare_s = _write_path(conn, republished), _bare_copy(conn, chains)
            for key, value in (
                ("wall", result.seconds),
                ("ideal", ideal),
                ("ratio", result.seconds / ideal),
                ("in_run", result.rows_written / result.write_seconds),
                ("merge", rows / merge_s),
                ("bare", rows / bare_s),
                ("write", bare_s / merge_s),
            ):
                figures[key].append(value)
            print(
                f"  run {i + 1}: {len(scope.tickers)} symbols, {result.pages} pages, {rows:,} rows; wall "
                f"{result.seconds:.2f}s vs ideal {ideal:.2f}s; writes {rows / merge_s:,.0f}/s vs bare COPY "
                f"{rows / bare_s:,.0f}/s; cpu during the run: kapman {cpu[0]:.1f}s + {result.workers} "
                f"workers {cpu[1]:.1f}s, server {cpu[2]:.1f}s, whole machine {cpu[3]:.1f}s",
                file=sys.stderr,
                flush=True,
            )
    client.close()
    return figures


def run(
    symbols: int = 150,
    contracts: int = 2000,
    concurrency: int = 8,
    latency: float = 0.05,
    repeat: int = 3,
    workers: int | None = None,
) -> list[dict]:
    """Rows {name, value, unit, target, ok} with the median of ``repeat`` runs."""
    from kapman.db.connect import with_database
    from kapman.db.rebuild import rebuild

    admin = os.environ.get("KAPMAN_BENCH_DATABASE_URL", DEFAULT_ADMIN)
    name = f"kapman_bench_{secrets.token_hex(4)}"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_options",
            "--serve",
            "--symbols",
            str(symbols),
            "--contracts",
            str(contracts),
            "--latency",
            str(latency),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    saved_now = os.environ.get("KAPMAN_NOW")
    created = False
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            created = True
        url = with_database(admin, name)
        rebuild(url)  # while the child warms its chains
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox server did not start")
        info = json.loads(line)
        os.environ["KAPMAN_NOW"] = info["now"]  # snapshot time = the sandbox's clock
        figures = _measure(url, info, concurrency, workers, latency, repeat, child.pid)
        from bench import bench_archive  # the archive's cost and the command's memory, beside the above

        archive_rows = bench_archive.run(url, info["base_url"], API_KEY, info["now"], concurrency, workers,
                                         repeat)
    finally:
        if saved_now is None:
            os.environ.pop("KAPMAN_NOW", None)
        else:
            os.environ["KAPMAN_NOW"] = saved_now
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        if created:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    med = {k: statistics.median(v) for k, v in figures.items()}
    return [
        {
            "name": "options wall time",
            "value": round(med["wall"], 2),
            "unit": "s",
            "target": None,
            "ok": True,
        },
        {
            "name": "ideal (pages x latency / concurrency)",
            "value": round(med["ideal"], 2),
            "unit": "s",
            "target": None,
            "ok": True,
        },
        {
            "name": f"wall / ideal at concurrency {concurrency}",
            "value": round(med["ratio"], 3),
            "unit": "x",
            "target": f"<= {WALL_TARGET}",
            "ok": med["ratio"] <= WALL_TARGET,
        },
        {
            "name": "writer throughput during the run",
            "value": round(med["in_run"]),
            "unit": "contracts/s",
            "target": None,
            "ok": True,
        },
        {
            "name": "write path (a replay: staging, comparison, rewrite; every row changed)",
            "value": round(med["merge"]),
            "unit": "contracts/s",
            "target": None,
            "ok": True,
        },
        {
            "name": "bare binary COPY",
            "value": round(med["bare"]),
            "unit": "contracts/s",
            "target": None,
            "ok": True,
        },
        {
            "name": "write path / bare COPY",
            "value": round(med["write"], 3),
            "unit": "x",
            "target": f">= {WRITE_TARGET}",
            "ok": med["write"] >= WRITE_TARGET,
        },
        *archive_rows,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=150)
    parser.add_argument("--contracts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: the job's default; 0: none)"
    )
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every request")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.symbols, args.contracts, args.latency)
        return 0
    rows = run(args.symbols, args.contracts, args.concurrency, args.latency, args.repeat, args.workers)
    print(
        f"options ingestion: {args.symbols} symbols x ~{args.contracts} contracts, "
        f"{args.latency * 1000:.0f} ms per page, median of {args.repeat}"
    )
    print(f"{'figure':42} {'value':>12} {'unit':12} {'target':>8}  ok")
    for r in rows:
        print(
            f"{r['name']:42} {r['value']:>12,} {r['unit']:12} {r['target'] or '':>8}  "
            f"{'yes' if r['ok'] else 'NO'}"
        )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
