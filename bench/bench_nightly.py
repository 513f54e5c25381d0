"""The nightly for one new full-market day, split by step.

    venv/bin/python -m bench.bench_nightly [--tickers 11000] [--days 760]

A sandbox market (REST in a child interpreter, so its work does not share our GIL; flat files in
a local mirror) and a scratch database brought to a steady state by the nightly itself: the
evening of 2025-12-17 loads every published file and takes that session's snapshot, the morning
of the 18th loads the 17th's file.  Then the measured day, as cron runs it: the evening of the
18th (the options snapshot of the 150 watchlist symbols, A3) and the morning of the 19th (tickers
and watchlists, the 18th's flat file, A2).  Each run is `python -m scripts.nightly --json`; the
figures are the seconds its summary reports, per step and in all, and how long
`python -m scripts.status` then takes on the full market.

Time spent on the API is the tickers, splits and options steps (the sandbox REST server answers
at once, so it is mostly the server rendering pages); the target is the whole day under 60 s
beyond it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from bench.common import Figure, print_table, scratch_database
from kapman.clock import NEW_YORK

TARGET_SECONDS = 60.0
MEASURED = date(2025, 12, 18)
STEPS = ("tickers", "splits", "watchlists", "ohlcv", "options", "a2", "a3")


def serve(tickers: int, days: int) -> None:
    """The child: a sandbox REST server until our stdin closes."""
    from kapman.sandbox.market import Market
    from kapman.sandbox.rest import SandboxRestServer

    market = Market(seed=42, n_tickers=tickers, days=days)
    with SandboxRestServer(market, api_key="bench-key") as server:
        print(json.dumps({"base_url": server.base_url}), flush=True)
        sys.stdin.read()


def _at(day: date, hour: int, minute: int = 30) -> datetime:
    return datetime.combine(day, clock_time(hour, minute), tzinfo=NEW_YORK).astimezone(UTC)


def _set_clock(base_url: str, instant: datetime) -> None:
    request = urllib.request.Request(f"{base_url}/_sandbox/clock", method="POST",
                                     data=json.dumps({"now": instant.isoformat()}).encode())
    urllib.request.urlopen(request, timeout=10).read()


def _nightly(env: dict[str, str], base_url: str, instant: datetime) -> tuple[dict[str, Any], float]:
    _set_clock(base_url, instant)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "--json", "-q", "--log-file", ""],
                          env={**env, "KAPMAN_NOW": instant.isoformat()}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"nightly at {instant} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout), wall


def _api_seconds(run: dict[str, Any]) -> float:
    """The steps that wait on the REST API: the reference data and the options fetch (the whole
    options step, its writes included, so the figure beside it errs on the strict side)."""
    steps = run["steps"]
    return sum(float(steps.get(name, {}).get("seconds", 0.0)) for name in ("tickers", "splits", "options"))


def run(tickers: int = 11000, days: int = 760) -> list[Figure]:
    from kapman.sandbox.market import Market
    from kapman.sandbox.mirror import write_mirror

    market = Market(seed=42, n_tickers=tickers, days=days)
    child = subprocess.Popen([sys.executable, "-m", "bench.bench_nightly", "--serve", "--tickers", str(tickers),
                              "--days", str(days)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        base_url = json.loads(child.stdout.readline())["base_url"]
        with tempfile.TemporaryDirectory(prefix="kapman-bench-nightly-") as tmp, scratch_database("nightly") as url:
            mirror = Path(tmp)
            published = [d for d in market.trading_days if d <= MEASURED]
            started = time.perf_counter()
            write_mirror(market, mirror, [d for d in published if d < MEASURED - timedelta(days=1)])
            print(f"mirror written in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
            env = {**os.environ, "DATABASE_URL": url, "POLYGON_BASE_URL": base_url, "POLYGON_API_KEY": "bench-key",
                   "POLYGON_RATE_LIMIT": "1000", "FLATFILES_MIRROR_DIR": str(mirror),
                   "KAPMAN_ENV_FILE": "/nonexistent"}
            _, wall = _nightly(env, base_url, _at(MEASURED - timedelta(days=1), 16))    # the steady state
            print(f"first load in {wall:.0f}s", file=sys.stderr, flush=True)
            write_mirror(market, mirror, [MEASURED - timedelta(days=1)])
            _nightly(env, base_url, _at(MEASURED, 11))
            evening, evening_wall = _nightly(env, base_url, _at(MEASURED, 16))           # measured
            write_mirror(market, mirror, [MEASURED])
            morning, morning_wall = _nightly(env, base_url, _at(MEASURED + timedelta(days=1), 11))
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "scripts.status", "--json"], capture_output=True, check=False,
                           env={**env, "KAPMAN_NOW": _at(MEASURED + timedelta(days=1), 12).isoformat()})
            status_wall = time.perf_counter() - started
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)
    figures = []
    for step in STEPS:
        seconds = sum(r["steps"].get(step, {}).get("seconds", 0.0) for r in (evening, morning))
        figures.append(Figure("nightly", f"{step} step", seconds, "s"))
    total = evening["seconds"] + morning["seconds"]
    api = _api_seconds(evening) + _api_seconds(morning)
    figures += [
        Figure("nightly", "evening run (options, A3)", evening["seconds"], "s"),
        Figure("nightly", "morning run (tickers, OHLCV, A2)", morning["seconds"], "s"),
        Figure("nightly", "both runs, with interpreter start", evening_wall + morning_wall, "s"),
        Figure("nightly", "time on the API (tickers, splits, options)", api, "s"),
        Figure("nightly", "status afterwards, with interpreter start", status_wall, "s"),
        Figure("nightly", "the day beyond API time", total - api, "s", f"< {TARGET_SECONDS:.0f}",
               total - api < TARGET_SECONDS),
    ]
    return figures


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_nightly", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickers", type=int, default=11000)
    p.add_argument("--days", type=int, default=760, help="calendar days of market history (730 are loaded)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.tickers, args.days)
        return 0
    print_table(run(args.tickers, args.days))
    return 0


if __name__ == "__main__":
    sys.exit(main())
