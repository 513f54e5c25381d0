"""Step 7: technical indicators and price metrics into daily_snapshots (A2)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from kapman import cli, registry
from kapman.jobs import a2_local_ta
from kapman.progress import for_terminal

COMMAND = registry.command("a2")
EXAMPLES = f"""
  {COMMAND} --date 2025-12-05 --workers 2 --ticker-chunk-size 500
  {COMMAND} --start-date 2025-12-15 --end-date 2025-12-19
  {COMMAND} --date 2025-12-19 --symbols AAPL,NVDA --force
  {COMMAND} --history         # after a repave: every date of the retention window
  {COMMAND} --history --force # after an indicator changed; rerun when stopped, it resumes
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Compute technical indicators (technical_indicators_json) and price metrics "
                   "(price_metrics_json) for every ticker with a bar on each requested date. Values for "
                   "(ticker, D) use the bars from the first trading day of the month 12 months before D "
                   "through D, adjusted for the splits executed by D (public.splits, Step 3b). Dates "
                   "already computed are skipped unless --force; a ticker's rows computed before a split of "
                   "it was loaded are not: without --force they are recomputed, whatever dates were asked "
                   "for. Exit 2 when there is nothing to compute (a date without bars, only unknown "
                   "symbols).", EXAMPLES)
    cli.add_date_options(p, "the newest date with OHLCV")
    p.add_argument("--symbols", action=cli.Once, help="comma-separated subset of tickers (default: all with bars)")
    p.add_argument("--workers", type=int, default=a2_local_ta.A2Params.workers,
                   help="threads running kernel chunks (default: the CPU count, at most 4; more than the CPU "
                        "count gains nothing)")
    p.add_argument("--ticker-chunk-size", type=int, default=a2_local_ta.DEFAULT_CHUNK,
                   help="tickers per kernel call; caps memory on very large universes")
    p.add_argument("--history", action="store_true",
                   help="every date with bars in the retention window: the indicator history after a repave "
                        "(resumable: dates already computed are skipped; progress with an ETA)")
    p.add_argument("--force", action="store_true",
                   help="recompute dates that already have values; with --history, rerun after a forced history "
                        "was stopped, it resumes: the dates that run recomputed are left out")
    p.add_argument("--enable-pattern-indicators", action="store_true",
                   help="add TA-Lib's 61 candlestick patterns under pattern_recognition")
    args = p.parse_args(argv)
    if args.enable_pattern_indicators and importlib.util.find_spec("talib") is None:
        p.error("--enable-pattern-indicators needs TA-Lib: pip install 'kapman[patterns]'")
    settings = cli.settings_for(args)
    params = a2_local_ta.A2Params(day=args.date, start=args.start_date, end=args.end_date,
                                  symbols=cli.symbols_arg(args.symbols), workers=args.workers,
                                  ticker_chunk_size=args.ticker_chunk_size, force=args.force,
                                  patterns=args.enable_pattern_indicators, history=args.history)
    return cli.finish(args, a2_local_ta.run(settings, params, for_terminal(args.quiet)))
