"""Step 6: option-chain snapshots of the active watchlist symbols into public.options_chains."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import archive, cli
from kapman.db.connect import connect
from kapman.errors import UsageError
from kapman.ingest.options import default_workers, ingest_options, plan_options
from kapman.ingest.options_scope import snapshot_time
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.progress import for_terminal
from kapman.providers.polygon import PolygonClient

EXAMPLES = """
  python -m scripts.ingest_options                                # every active watchlist symbol, now
  python -m scripts.ingest_options --concurrency 1 --symbols AAPL # a smoke test
  python -m scripts.ingest_options --workers 0                    # decode in the fetch threads, no processes
  python -m scripts.ingest_options --dry-run                      # what would be fetched
  python -m scripts.ingest_options --no-archive                   # do not archive this snapshot
  python -m scripts.ingest_options --snapshot-time 2025-12-19T21:00:00Z --symbols TSLA
                                                                  # replay today's run: rows update in place
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(
        "python -m scripts.ingest_options",
        "Snapshot the option chains of the active watchlist symbols into public.options_chains. "
        "Every symbol of a run shares one snapshot time; each symbol is written in its own "
        "transaction, and a failing symbol never stops the others. Exit 0 all ok, 1 some "
        "symbols failed, 2 none succeeded or a usage/configuration error (a 401 stops the run).",
        EXAMPLES,
    )
    p.add_argument(
        "--symbols",
        metavar="A,B",
        help="only these symbols (each must be in an active watchlist and have a ticker)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="symbols fetched in parallel (one shared rate limit: POLYGON_RATE_LIMIT)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help="processes that decode, normalise and encode the fetched chains, so that the fetching "
        "process does not (by default two, or one fewer than the CPUs if that is fewer, at least one; "
        "0: the fetch threads do it)",
    )
    p.add_argument(
        "--snapshot-time",
        metavar="ISO",
        help="replay under this snapshot time (today only; default: now by KapMan's clock, "
        "to the second); rows of the same time are updated in place",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="resolve the symbols and report; fetch and write nothing"
    )
    p.add_argument(
        "--no-archive", action="store_true",
        help="do not write this run's snapshot to the archive (KAPMAN_ARCHIVE_DIR); by default every "
        "run archives what it stored, and a failed archive write makes the run exit 1",
    )
    args = p.parse_args(argv)
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {args.concurrency}")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    settings = cli.settings_for(args)
    snapshot = snapshot_time(args.snapshot_time)
    symbols = args.symbols.split(",") if args.symbols is not None else None
    with connect(settings.require_database_url()) as conn:
        scope = resolve_scope(conn, symbols)
        if args.dry_run:
            result = plan_options(scope, snapshot, args.concurrency, args.workers)
        else:
            # The urllib3 pool holds a connection per worker, so no worker waits for a socket.
            client = PolygonClient.from_settings(settings, pool_size=args.concurrency)
            try:
                result = ingest_options(
                    conn,
                    client,
                    scope,
                    snapshot,
                    concurrency=args.concurrency,
                    workers=args.workers,
                    progress=for_terminal(args.quiet),
                )
            finally:
                client.close()
    # The archive hook: after the run's writes are committed, archive what is stored.
    archived = None if args.dry_run or args.no_archive else archive.archive_run(settings, snapshot)
    summary = result.summary() + (f"\n{archived.line()}" if archived else "")
    cli.emit(args, summary, {**result.as_dict(), **({"archive": archived.as_dict()} if archived else {})})
    if result.error is not None:
        raise result.error
    return max(result.exit_code(), 0 if archived is None or archived.ok else cli.EXIT_PARTIAL)


if __name__ == "__main__":
    cli.entrypoint(main)
