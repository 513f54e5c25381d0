"""Restore archived option-chain snapshots into a rebuilt database (after Step 5, before Step 6)."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli
from kapman.archive import restore
from kapman.errors import UsageError
from kapman.progress import for_terminal

EXAMPLES = """
  python -m scripts.restore_options_archive                       # every archived snapshot
  python -m scripts.restore_options_archive --start-date 2025-12-15 --end-date 2025-12-19
  python -m scripts.restore_options_archive --force               # re-read and merge every file
  python -m scripts.restore_options_archive --from-warehouse kapman_demo@127.0.0.1:5432   # another's archive
  KAPMAN_ARCHIVE_DIR=s3://bucket/kapman python -m scripts.restore_options_archive
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(
        "python -m scripts.restore_options_archive",
        "Load the option snapshots of this warehouse's archive (KAPMAN_ARCHIVE_DIR: a directory or "
        "s3://bucket/prefix; unset: archive/<warehouse>) into public.options_chains through the ingester's "
        "writer, one transaction per snapshot and underlying. An archive another warehouse wrote, or a "
        "sandbox's into a live warehouse, is refused unless --from-warehouse names it. Idempotent and "
        "resumable: files already restored are skipped, rows that exist are merged, never duplicated. "
        "Each file is checked against its manifest entry before it is written (checksum, columns, rows, "
        "snapshot time, underlying, content hash, plausible values); one that does not match is named and "
        "skipped. Exit 0 all restored, 1 some files failed, 2 none could be restored, nothing is archived "
        "in the range, or the archive is another warehouse's.",
        EXAMPLES,
    )
    cli.add_date_options(p, "every archived snapshot")
    p.add_argument("--force", action="store_true",
                   help="read and merge every file, also those whose rows are all stored already")
    p.add_argument("--from-warehouse", metavar="NAME",
                   help="restore an archive written by warehouse NAME (as the refusal names it) into this one, "
                        "or a sandbox archive into a live warehouse; 'any': whatever wrote it, older "
                        "archives without a warehouse included")
    args = p.parse_args(argv)
    if args.date and (args.start_date or args.end_date):
        raise UsageError("give --date or --start-date/--end-date, not both")
    start = args.date or args.start_date
    end = args.date or args.end_date
    if start and end and start > end:
        raise UsageError(f"--start-date {start} is after --end-date {end}")
    settings = cli.settings_for(args)
    params = restore.RestoreParams(start_date=start, end_date=end, force=args.force,
                                   from_warehouse=args.from_warehouse)
    return cli.finish(args, restore.run(settings, params, for_terminal(args.quiet)))


if __name__ == "__main__":
    cli.entrypoint(main)
