"""A5: drop and recreate the KapMan database, apply db/migrations, validate, fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.config import mask_url
from kapman.db.rebuild import report_lines
from kapman.ops import rebuild
from kapman.progress import for_terminal

COMMAND = registry.command("rebuild")
EXAMPLES = f"""
  {COMMAND}
  {COMMAND} --yes          # without a terminal (scripts, CI)
  {COMMAND} --iterations 3
  {COMMAND} --print-migrations --db-url postgresql://kapman:***@127.0.0.1:5432/kapman
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Destroy and rebuild the database from db/migrations (the A6 schema), validate every "
                   "runbook invariant and print the schema fingerprint. All data is lost: a database that "
                   "holds data is first described (rows per table, option snapshots that cannot be fetched "
                   "again) and destroyed only when you type its name on a terminal; without a terminal "
                   "pass --yes. A second rebuild of the same database while one runs is refused.",
                   EXAMPLES)
    p.add_argument("--iterations", type=int, default=1, metavar="N",
                   help="rebuild N times and require an identical fingerprint each time")
    p.add_argument("--print-migrations", action="store_true", help="list the migrations applied")
    p.add_argument("-y", "--yes", action="store_true",
                   help="destroy a database that holds data without asking (required without a terminal)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)

    result = rebuild.run(settings, rebuild.RebuildParams(iterations=args.iterations, yes=args.yes),
                         for_terminal(args.quiet or args.json))
    if not args.quiet and not args.json and result.details.built is not None:
        print("\n".join(report_lines(result.details.built, migrations=args.print_migrations)
                        + [f"database: {mask_url(settings.database_url)}"]))
    return cli.finish(args, result)
