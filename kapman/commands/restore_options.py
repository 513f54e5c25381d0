"""Restore archived option-chain snapshots into a rebuilt database (after Step 5, before Step 6)."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.archive import restore
from kapman.progress import for_terminal

COMMAND = registry.command("restore-options")
EXAMPLES = f"""
  {COMMAND}                       # every archived snapshot
  {COMMAND} --start-date 2025-12-15 --end-date 2025-12-19
  {COMMAND} --force               # re-read and merge every file
  {COMMAND} --from-warehouse kapman_demo@127.0.0.1:5432   # another's archive
  KAPMAN_ARCHIVE_DIR=s3://bucket/kapman {COMMAND}
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(
        COMMAND,
        "Load the option snapshots of this warehouse's archive (KAPMAN_ARCHIVE_DIR: a directory or "
        "s3://bucket/prefix; unset: archive/<warehouse>) into public.options_chains through the ingester's "
        "writer, one transaction per snapshot and underlying. An archive another warehouse wrote, or a "
        "sandbox's into a live warehouse, is refused unless --from-warehouse names it. Idempotent and "
        "resumable: files already restored are skipped, rows the database lacks are added, never duplicated; "
        "a stored row is never changed: a chain the database holds in another version is named and kept. "
        "Each file is checked against its manifest entry before it is written (checksum, columns, rows, "
        "snapshot time, underlying, one row per contract, content hash, plausible values); one that does "
        "not match is named and skipped; chains of underlyings tickers does not list are restored, named in a "
        "note. Snapshots older than the retention window stay in the archive (named in a note). Exit 0 "
        "all restored, 1 some files failed, 2 none could be restored, nothing is archived in the range (or "
        "only snapshots older than the window), or the archive is another warehouse's.",
        EXAMPLES,
    )
    cli.add_date_options(p, "every archived snapshot")
    p.add_argument("--force", action="store_true",
                   help="read and merge every file, also those whose rows are all stored already "
                        "(stored rows are still never changed)")
    p.add_argument("--from-warehouse", metavar="NAME",
                   help="restore an archive written by warehouse NAME (as the refusal names it) into this one, "
                        "or another warehouse's sandbox archive into a live one; 'any': whatever wrote it, "
                        "older archives without a warehouse and sandbox snapshots filed under this "
                        "warehouse's own name included")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    params = restore.RestoreParams(day=args.date, start=args.start_date, end=args.end_date, force=args.force,
                                   from_warehouse=args.from_warehouse)
    return cli.finish(args, restore.run(settings, params, for_terminal(args.quiet)))
