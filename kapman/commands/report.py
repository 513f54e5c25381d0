"""Reports: a symbol's day, a watchlist's index, or the warehouse's coverage, as offline HTML pages."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kapman import cli, registry
from kapman.errors import UsageError
from kapman.progress import for_terminal
from kapman.report import run

COMMAND = registry.command("report")
EXAMPLES = f"""
  {COMMAND} AAPL                                  # its newest date with a bar
  {COMMAND} AAPL --date 2025-12-19 --out aapl.html
  {COMMAND} --watchlist mvp --out reports/mvp     # index.html and one page per symbol
  {COMMAND} --warehouse                           # coverage heat map and gaps
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Write a self-contained HTML report (charts work offline): a symbol's candles with its stored "
                   "A2 indicators and A3 dealer gamma, a watchlist's index of such reports, or the warehouse's "
                   "coverage per trading day of the retention window.", EXAMPLES)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("symbol", nargs="?", help="the ticker symbol to report on")
    what.add_argument("--watchlist", metavar="NAME", help="report on every active symbol of this watchlist")
    what.add_argument("--warehouse", action="store_true", help="coverage of OHLCV, snapshots, A2 and A3")
    p.add_argument("--date", type=cli.day_arg, action=cli.Once, metavar="YYYY-MM-DD",
                   help="trading date (default: each symbol's newest date with a bar; an index's newest A3 date)")
    p.add_argument("--out", dest="out_text", metavar="PATH",
                   help="output file (a regular file, replaced atomically; a symlink is followed; a device or "
                        "FIFO is refused), or a directory to write it into (a trailing '/' names "
                        "one, made if need be); with --watchlist the "
                        "directory of pages (index.html and one per symbol); default under reports/")
    args = p.parse_args(argv)
    if args.out_text is not None and not args.out_text.strip():   # an empty variable in a script: not the cwd
        raise UsageError("--out is empty", hint="name a file or a directory, or leave --out out for reports/")
    args.out = Path(args.out_text) if args.out_text is not None else None
    settings = cli.settings_for(args)
    params = run.ReportParams(symbol=args.symbol, day=args.date, watchlist=args.watchlist,
                              warehouse=args.warehouse, out=args.out,
                              out_is_dir=bool(args.out_text) and args.out_text.endswith(("/", os.sep)))
    return cli.finish(args, run.run(settings, params, for_terminal(args.quiet)))
