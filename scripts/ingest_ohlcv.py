"""Step 5: daily bars from the flat files into public.ohlcv (base, incremental, backfill)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date

from kapman import cli
from kapman.db.connect import connect
from kapman.ingest.ohlcv import backfill_window, base_window, incremental_window, ingest_ohlcv
from kapman.progress import for_terminal
from kapman.providers.flatfiles import source_from_settings

EXAMPLES = """
  python -m scripts.ingest_ohlcv base                       # the last 730 days
  python -m scripts.ingest_ohlcv base --days 30 --as-of 2025-12-19
  python -m scripts.ingest_ohlcv incremental                # from the newest loaded date to today
  python -m scripts.ingest_ohlcv incremental --date 2025-12-19
  python -m scripts.ingest_ohlcv backfill --start 2024-01-01 --end 2024-03-31 --force
"""


def _day(text: str) -> date:
    return date.fromisoformat(text)


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.ingest_ohlcv",
                   "Load day-aggregate flat files (S3, or FLATFILES_MIRROR_DIR) into public.ohlcv. Files whose "
                   "ETag is already in the ledger are skipped; weekends and holidays simply have no file.",
                   EXAMPLES)
    p.add_argument("--force", action="store_true", help="reload files even when their ETag is unchanged")
    p.add_argument("--workers", type=int, default=4, help="concurrent downloads")
    sub = p.add_subparsers(dest="mode", required=True, metavar="{base,incremental,backfill}")
    base = sub.add_parser("base", help="every trading day with a file in the last N calendar days")
    base.add_argument("--days", type=int, default=730, help="calendar days back (730 = the retention window)")
    base.add_argument("--as-of", type=_day, default=None, metavar="YYYY-MM-DD",
                      help="last day of the window (default: today by KapMan's clock)")
    inc = sub.add_parser("incremental", help="from the day after the newest loaded date")
    inc.add_argument("--date", type=_day, default=None, help="load just this date")
    inc.add_argument("--start", type=_day, default=None)
    inc.add_argument("--end", type=_day, default=None, help="default: today by KapMan's clock")
    back = sub.add_parser("backfill", help="an explicit date range")
    back.add_argument("--start", type=_day, required=True)
    back.add_argument("--end", type=_day, required=True)
    for sp in (base, inc, back):
        sp.formatter_class = cli._Formatter
        cli.add_common_options(sp, in_subcommand=True)
        sp.add_argument("--force", action="store_true", default=argparse.SUPPRESS,
                        help="reload files even when their ETag is unchanged")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    source = source_from_settings(settings)
    with connect(settings.require_database_url()) as conn:
        if args.mode == "base":
            window = base_window(args.days, args.as_of)
        elif args.mode == "incremental":
            start, end = (args.date, args.date) if args.date else (args.start, args.end)
            window = incremental_window(conn, start=start, end=end)
        else:
            window = backfill_window(args.start, args.end)
        result = ingest_ohlcv(conn, source, window, force=args.force, workers=args.workers,
                              progress=for_terminal(args.quiet))
    cli.emit(args, result.summary(), result.as_dict())
    if result.failed:
        return cli.EXIT_PARTIAL if result.files_loaded else cli.EXIT_FAILURE
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
