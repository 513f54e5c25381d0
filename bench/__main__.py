"""Every benchmark in one run, with a table of figures and ratios against their targets.

    venv/bin/python -m bench [--quick] [--only ohlcv,options,a2,...]    (or ./dev.sh bench)

Suites: ohlcv, options, a2, a3, lifecycle, compression, nightly, serve.

Each benchmark creates and drops its own kapman_bench_* database on the server named by
KAPMAN_BENCH_DATABASE_URL (an admin URL; default: the local server).  Full size takes about a
quarter of an hour on 2 cores; --quick shrinks the data (figures then only indicate).  Every
suite prints the machine's load average at its start and end, and the peak memory of each
command it runs (that command's own, bench/measure.py) with its budget beside it.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.common import Figure, load_figure, print_table

SUITES = ("ohlcv", "options", "a2", "a3", "lifecycle", "compression", "nightly", "serve")


def _options(quick: bool) -> list[Figure]:
    from bench import bench_options

    rows = bench_options.run(symbols=30 if quick else 150, repeat=1 if quick else 3)
    return [Figure("options", r["name"], r["value"], r["unit"], r.get("target") or "", r.get("ok")) for r in rows]


def run_suite(name: str, quick: bool) -> list[Figure]:
    if name == "ohlcv":
        from bench import bench_ohlcv
        return bench_ohlcv.run(tickers=2000 if quick else 11000, repeat=1 if quick else 3)
    if name == "options":
        return _options(quick)
    if name == "a2":
        from bench import bench_a2
        return bench_a2.run(tickers=2000 if quick else 11000, repeat=1 if quick else 3)
    if name == "a3":
        from bench import bench_a3
        return bench_a3.run(symbols=30 if quick else 150, repeat=1 if quick else 3)
    if name == "lifecycle":   # community edition only; says why it skipped elsewhere
        from bench import bench_lifecycle
        return bench_lifecycle.run(tickers=500 if quick else 3000)
    if name == "compression":   # community edition only; says why it skipped elsewhere
        from bench import bench_compression
        return bench_compression.run(tickers=200 if quick else 600, days=400 if quick else 1060)
    if name == "nightly":     # compressed as in production on the community edition; says what it skipped elsewhere
        from bench import bench_nightly
        return bench_nightly.run(tickers=2000 if quick else 11000, days=400 if quick else 760,
                                 contracts=500 if quick else 2000, history=2 if quick else 5)
    if name == "serve":
        from bench import bench_serve
        return bench_serve.run(tickers=2000 if quick else 11000, repeat=1 if quick else 3)
    raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(SUITES)}")


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data: a smoke run, not a measurement")
    p.add_argument("--only", default=",".join(SUITES), help="comma-separated subset")
    args = p.parse_args()
    figures: list[Figure] = []
    for name in [s.strip() for s in args.only.split(",") if s.strip()]:
        started = time.perf_counter()
        start = load_figure(name, "start")
        print(f"running {name} ... ({start.name})", file=sys.stderr, flush=True)
        suite = run_suite(name, args.quick)
        end = load_figure(name, "end")
        figures += [start, *suite, end]
        print(f"{name} done in {time.perf_counter() - started:.0f}s ({end.name})", file=sys.stderr, flush=True)
    print()
    print_table(figures)
    missed = [f for f in figures if f.ok is False]
    print(f"\n{len(figures)} figures, {sum(f.ok is True for f in figures)} targets met, {len(missed)} missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
