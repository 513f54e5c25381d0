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
  KAPMAN_ARCHIVE_DIR=s3://bucket/kapman {COMMAND}
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(
        COMMAND,
        "Load the option snapshots of the archive (KAPMAN_ARCHIVE_DIR: a directory or s3://bucket/prefix) "
        "into public.options_chains through the ingester's writer, one transaction per snapshot and "
        "underlying. Idempotent and resumable: files already restored are skipped, rows that exist are "
        "merged, never duplicated. A corrupt file, a checksum mismatch or wrong columns are reported "
        "with the file's name and skipped. Exit 0 all restored, 1 some files failed, 2 none could be "
        "restored or nothing is archived in the range.",
        EXAMPLES,
    )
    cli.add_date_options(p, "every archived snapshot")
    p.add_argument("--force", action="store_true",
                   help="read and merge every file, also those whose rows are all stored already")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    params = restore.RestoreParams(day=args.date, start=args.start_date, end=args.end_date, force=args.force)
    return cli.finish(args, restore.run(settings, params, for_terminal(args.quiet)))
