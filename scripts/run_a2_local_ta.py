"""Step 7: technical indicators and price metrics into daily_snapshots (A2)."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli
from kapman.jobs import a2_local_ta
from kapman.progress import for_terminal

EXAMPLES = """
  python -m scripts.run_a2_local_ta --date 2025-12-05 --workers 6 --ticker-chunk-size 500
  python -m scripts.run_a2_local_ta --start-date 2025-12-15 --end-date 2025-12-19
  python -m scripts.run_a2_local_ta --date 2025-12-19 --symbols AAPL,NVDA --force
  python -m scripts.run_a2_local_ta --history         # after a repave: every date of the retention window
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.run_a2_local_ta",
                   "Compute technical indicators (technical_indicators_json) and price metrics "
                   "(price_metrics_json) for every ticker with a bar on each requested date. Values for "
                   "(ticker, D) use the bars from the first trading day of the month 12 months before D "
                   "through D, adjusted for the splits executed by D (public.splits, Step 3b). Dates "
                   "already computed are skipped unless --force. Exit 2 when there is nothing to compute "
                   "(a date without bars, only unknown symbols).", EXAMPLES)
    cli.add_date_options(p, "the newest date with OHLCV")
    p.add_argument("--symbols", help="comma-separated subset of tickers (default: all with bars)")
    p.add_argument("--workers", type=int, default=a2_local_ta.A2Params.workers,
                   help="threads running kernel chunks (more than the CPU count gains nothing)")
    p.add_argument("--ticker-chunk-size", type=int, default=a2_local_ta.DEFAULT_CHUNK,
                   help="tickers per kernel call; caps memory on very large universes")
    p.add_argument("--history", action="store_true",
                   help="every date with bars in the retention window: the indicator history after a repave "
                        "(resumable: dates already computed are skipped; progress with an ETA)")
    p.add_argument("--force", action="store_true", help="recompute dates that already have values")
    p.add_argument("--enable-pattern-indicators", action="store_true",
                   help="add TA-Lib's 61 candlestick patterns under pattern_recognition")
    args = p.parse_args(argv)
    if args.workers < 1 or args.ticker_chunk_size < 1:
        p.error("--workers and --ticker-chunk-size must be at least 1")
    settings = cli.settings_for(args)
    params = a2_local_ta.A2Params(day=args.date, start_date=args.start_date, end_date=args.end_date,
                                  symbols=cli.symbols_arg(args.symbols), workers=args.workers,
                                  ticker_chunk_size=args.ticker_chunk_size, force=args.force,
                                  patterns=args.enable_pattern_indicators, history=args.history)
    return cli.finish(args, a2_local_ta.run(settings, params, for_terminal(args.quiet)))


if __name__ == "__main__":
    cli.entrypoint(main)
