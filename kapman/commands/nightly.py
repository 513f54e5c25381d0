"""The nightly: everything due by KapMan's clock and the NYSE calendar, in order, one run at a time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from kapman import cli, registry
from kapman.ops import logfile, nightly
from kapman.progress import for_terminal

log = logging.getLogger("kapman.nightly")

COMMAND = registry.command("nightly")
EXAMPLES = f"""
  {COMMAND} --dry-run          # what is due now, and why
  {COMMAND} -q                 # from cron or a systemd timer
  {COMMAND} --no-history       # quick: leave the indicator history to run_a2_local_ta --history
  {COMMAND} --log-file /var/log/kapman/nightly.log --json
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Do what is due, in order: tickers, splits and watchlists (once per New York day); OHLCV for every "
                   "trading day of the retention window whose flat file is not loaded or was republished; the "
                   "options snapshot once today's session has closed, for every watchlist symbol without a chain "
                   "of the session yet (a symbol or a snapshot missed by midnight is reported lost, never taken "
                   "late); A2 for every date with bars and no A2, and for each ticker's rows computed before "
                   "a split of it was loaded (on a warehouse without any A2, the indicator "
                   "history: every date of the retention window with bars, resumed by later nightlies if "
                   "interrupted); A3 for every date with a snapshot and no A3, or whose chains changed after it "
                   "ran (fetched later, or rewritten under the same snapshot time). Run it at 16:30 and 11:30 New "
                   "York. One run at a time "
                   "(a second exits 2 at once). SIGTERM or SIGHUP stops it like Ctrl-C, recorded as interrupted "
                   "(exit 143 or 129). Due by KapMan's clock: KAPMAN_NOW, else the frozen clock a sandbox database "
                   "records, else real time (--dry-run too). Exit 0 all done or nothing due; "
                   "1 work done, but a step failed, a snapshot or a symbol was lost or a due file is unpublished; "
                   "2 nothing could be done.", EXAMPLES)
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and change nothing; exit 1 when a part of it could not be planned (the "
                        "flat files cannot be listed) beside steps that were, 2 when nothing else is due")
    p.add_argument("--no-history", action="store_true",
                   help="do not start or resume A2's indicator history (every date of the window, minutes on a "
                        "full market): A2 only from where it began, on a warehouse without any A2 the newest day "
                        "whose flat file is due; status still says the history is owed")
    p.add_argument("--log-file", type=Path, default=None, metavar="PATH",
                   help=f"rotating log of every run (5 MB x 7 files; default: {logfile.DEFAULT_PATH}); "
                        "'' for none")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    path = logfile.DEFAULT_PATH if args.log_file is None else args.log_file
    if str(path) not in ("", ".") and not args.dry_run:
        logfile.attach(path, settings)
    result = nightly.run(settings, for_terminal(args.quiet), dry_run=args.dry_run, history=not args.no_history)
    if args.dry_run and not args.json and result.details.plan is not None:
        print(result.details.plan.render())
    code = cli.finish(args, result)
    log.info("%s (exit %d)", result.summary(), code)
    return code
