"""Step 6: option-chain snapshots of the active watchlist symbols into public.options_chains."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kapman import cli, registry
from kapman.config import REQUEST_DEADLINE_RANGE, RUN_DEADLINE_RANGE
from kapman.ingest import options
from kapman.ingest.options.fetch import CONCURRENCY_RANGE
from kapman.ingest.options.workers import WORKERS_RANGE
from kapman.progress import for_terminal

DESCRIPTION = (
    "Snapshot the option chains of the active watchlist symbols into public.options_chains. "
    "Every symbol of a run shares one snapshot time: against the live API the real time (the "
    "server's Date header), against the offline sandbox KapMan's clock (never of an earlier day than "
    "the sandbox's own, whose chain it serves). Each symbol is written in "
    "its own transaction, and a failing symbol never stops the others (a 401 or a lost database "
    "stops the run; what is written stays). Between a session's close and midnight New York a run "
    "without --symbols or --snapshot-time completes the session's snapshot: it fetches only the "
    "symbols with no chain of the session yet (never fetched, or failed earlier), each under this "
    "run's own time, and does nothing when every symbol has one; one such run completes a session at "
    "a time (a second started meanwhile is refused)."
)
COMMAND = registry.command("options")
EXAMPLES = f"""
  {COMMAND}                                # every active watchlist symbol without a
                                                                  # chain of today's session yet, now
  {COMMAND} --concurrency 1 --symbols AAPL # a smoke test
  {COMMAND} --workers 0                    # decode in the fetch threads, no processes
  {COMMAND} --dry-run                      # what would be fetched
  {COMMAND} --deadline 600                 # give up on what is not fetched in 10 minutes
  {COMMAND} --no-archive                   # do not archive this snapshot
  {COMMAND} --archive-only                 # archive what the archive lacks, fetch nothing
  {COMMAND} --snapshot-time 2025-12-19T21:00:00Z --symbols TSLA
                                                                  # sandbox: replay a run of today, TSLA replaced
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbols", action=cli.Once, metavar="A,B",
                   help="only these symbols (each must be in an active watchlist and have a ticker)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N",
                   help=f"symbols fetched in parallel, {CONCURRENCY_RANGE} (one shared rate limit: "
                   "POLYGON_RATE_LIMIT)")
    p.add_argument("--workers", type=int, default=options.default_workers(), metavar="N",
                   help=f"worker processes that decode, normalise and encode the fetched chains, {WORKERS_RANGE}, "
                   "never more than there are symbols; by default two, or one fewer than the CPUs if that is "
                   "fewer, at least one (0: the fetch threads do it)")
    p.add_argument("--snapshot-time", metavar="ISO", type=cli.instant_arg,
                   help="sandbox only: replay under this time of today (New York), replacing the chains "
                   "stored under it; unset: now (refused against the live API, whose chains are always now)")
    p.add_argument("--deadline", type=float, metavar="SECONDS",
                   help=f"seconds the run may fetch for, {RUN_DEADLINE_RANGE}; "
                   "then symbols not fetched fail with that reason; unset: OPTIONS_RUN_DEADLINE, else 3600")
    p.add_argument("--request-deadline", type=float, metavar="SECONDS",
                   help=f"seconds one request may take with its retries and waits, {REQUEST_DEADLINE_RANGE}; "
                   "unset: POLYGON_REQUEST_DEADLINE, else 120")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve the symbols and the snapshot time (one request); fetch no chain, write nothing")
    p.add_argument("--archive-only", action="store_true",
                   help="fetch nothing: archive every stored snapshot the archive does not hold (after the "
                   "archive moved or was emptied, or a file was damaged; status and retention name it), whatever "
                   "earlier runs checked: every archived file is read and its rows compared with the stored ones")
    p.add_argument("--no-archive", action="store_true",
                   help="do not write this run's snapshot to the archive (KAPMAN_ARCHIVE_DIR); every run "
                   "archives each chain as it is stored, and a failed archive write makes the run exit 1")


def params_from(args: argparse.Namespace) -> options.OptionsParams:
    return options.OptionsParams(
        symbols=args.symbols.split(",") if args.symbols is not None else None,
        concurrency=args.concurrency,
        workers=args.workers,
        snapshot_time=args.snapshot_time,
        dry_run=args.dry_run,
        deadline=args.deadline,
        request_deadline=args.request_deadline,
        archive=not args.no_archive,
        archive_only=args.archive_only,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND, DESCRIPTION, EXAMPLES)
    add_arguments(p)
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    return cli.finish(args, options.run(settings, params_from(args), for_terminal(args.quiet)))
