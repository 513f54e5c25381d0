"""Step 5: daily bars from the flat files (or the REST grouped-daily endpoint) into public.ohlcv."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date

from kapman import calendar, cli, registry
from kapman.errors import UsageError
from kapman.ingest.ohlcv import SOURCES, WORKERS_RANGE, OhlcvParams, run
from kapman.ingest.ohlcv_plan import RECHECK_DAYS
from kapman.params import date_span
from kapman.progress import for_terminal

COMMAND = registry.command("ohlcv")
EXAMPLES = f"""
  {COMMAND} base                       # the last 730 days
  {COMMAND} base --days 30 --as-of 2025-12-19
  {COMMAND} incremental                # after the newest loaded date, to today
  {COMMAND} incremental --date 2025-12-19
  {COMMAND} backfill --start-date 2024-01-01 --end-date 2024-03-31 --force
  {COMMAND} --source rest base --days 30   # free plan: grouped-daily REST endpoint
"""


_day = cli.day_arg


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(COMMAND,
                   "Load day-aggregate flat files (S3, or FLATFILES_MIRROR_DIR) into public.ohlcv, or with "
                   "--source rest the grouped-daily REST endpoint (free plan). Files whose ETag is already in "
                   "the ledger are skipped; trading days without a file past their publication time "
                   "(11:00 New York the next day) are reported as missing (exit 1).", EXAMPLES)
    _add_run_options(p)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{base,incremental,backfill}")
    base = sub.add_parser("base", help="every trading day in the last N calendar days")
    base.add_argument("--days", type=int, default=730, help="calendar days back (730 = the retention window)")
    base.add_argument("--as-of", type=_day, action=cli.Once, default=argparse.SUPPRESS, metavar="YYYY-MM-DD",
                      help="last day of the window (default: today by KapMan's clock)")
    inc = sub.add_parser("incremental", help="from the day after the newest loaded date")
    inc.add_argument("--date", type=_day, action=cli.Once, default=argparse.SUPPRESS, metavar="YYYY-MM-DD",
                     help="load just this date")
    inc.add_argument("--start-date", "--start", dest="start", type=_day, action=cli.Once, default=argparse.SUPPRESS,
                     metavar="YYYY-MM-DD", help="first date (default: the day after the newest loaded date)")
    inc.add_argument("--end-date", "--end", dest="end", type=_day, action=cli.Once, default=argparse.SUPPRESS,
                     metavar="YYYY-MM-DD", help="last date (default: today by KapMan's clock)")
    inc.add_argument("--recheck-days", type=int, default=RECHECK_DAYS, metavar="N",
                     help="trading days before the start listed again; flat files with a new ETag are reloaded")
    back = sub.add_parser("backfill", help="an explicit date range")
    back.add_argument("--start-date", "--start", dest="start", type=_day, action=cli.Once, required=True,
                      metavar="YYYY-MM-DD", default=argparse.SUPPRESS, help="first date")
    back.add_argument("--end-date", "--end", dest="end", type=_day, action=cli.Once, required=True,
                      metavar="YYYY-MM-DD", default=argparse.SUPPRESS, help="last date")
    for sp in (base, inc, back):
        sp.formatter_class = cli._Formatter
        cli.add_common_options(sp, in_subcommand=True)
        _add_run_options(sp, in_subcommand=True)
    return p


def _add_run_options(p: argparse.ArgumentParser, *, in_subcommand: bool = False) -> None:
    """--force, --workers and --source, before the subcommand or after it (``base --workers 2`` was
    'unrecognized arguments'); a subcommand's take the value only when given."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    p.add_argument("--force", action="store_true", default=default(False),
                   help="reload files of the window even when their ETag is unchanged")
    p.add_argument("--workers", type=int, default=default(4), metavar=f"{WORKERS_RANGE.low}-{WORKERS_RANGE.high}",
                   help="files downloaded and parsed at once, by threads (the database writer is one)")
    p.add_argument("--source", choices=SOURCES, default=default("flatfiles"),
                   help="flatfiles: S3 or FLATFILES_MIRROR_DIR (paid plans); rest: one grouped-daily request "
                        "per date under POLYGON_RATE_LIMIT (the free plan allows 5 a minute)")


def params_of(args: argparse.Namespace) -> OhlcvParams:
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    day = getattr(args, "date", None)
    date_span(day, start, end, open_ended=True)   # --date with a start or an end was loaded as --date alone
    if day:
        start = end = day
    _a_trading_day_in(start, end)
    return OhlcvParams(mode=args.mode, days=getattr(args, "days", 730), as_of=getattr(args, "as_of", None),
                       start=start, end=end, force=args.force, workers=args.workers,
                       recheck_days=getattr(args, "recheck_days", RECHECK_DAYS), source=args.source)


def _a_trading_day_in(start: date | None, end: date | None) -> None:
    """Dates typed on the command line that hold no NYSE session have no file to load: refused, as A2 and
    A3 refuse them (it was "ok · up to date"). The nightly's windows are days with a file, never checked."""
    if start is None or end is None or start > end or any(calendar.trading_days(start, end)):
        return
    if start == end:
        raise UsageError(f"{start} ({start:%A}) is not a NYSE trading day: it has no flat file")
    raise UsageError(f"{start}..{end} holds no NYSE trading day")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = cli.settings_for(args)
    return cli.finish(args, run(settings, params_of(args), for_terminal(args.quiet)))
