"""A5: drop and recreate the KapMan database, apply db/migrations, validate, fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli
from kapman.config import bounded, mask_url
from kapman.db import rebuild
from kapman.progress import for_terminal

EXAMPLES = """
  python -m scripts.db.a5_deterministic_rebuild
  python -m scripts.db.a5_deterministic_rebuild --yes          # without a terminal (scripts, CI)
  python -m scripts.db.a5_deterministic_rebuild --iterations 3
  python -m scripts.db.a5_deterministic_rebuild --print-migrations --db-url postgresql://kapman:***@127.0.0.1:5432/kapman
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.db.a5_deterministic_rebuild",
                   "Destroy and rebuild the database from db/migrations (the A6 schema), validate every "
                   "runbook invariant and print the schema fingerprint. All data is lost: a database that "
                   "holds data is first described (rows per table, option snapshots that cannot be fetched "
                   "again) and destroyed only when you type its name on a terminal; without a terminal "
                   "pass --yes. A second rebuild of the same database while one runs is refused.",
                   EXAMPLES)
    p.add_argument("--iterations", type=bounded(1, 100, integer=True), default=1, metavar="N",
                   help="rebuild N times and require an identical fingerprint each time")
    p.add_argument("--print-migrations", action="store_true", help="list the migrations applied")
    p.add_argument("-y", "--yes", action="store_true",
                   help="destroy a database that holds data without asking (required without a terminal)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)

    def report(built: rebuild.RebuildResult) -> None:
        if not args.quiet and not args.json:
            print("\n".join(rebuild.report_lines(built, migrations=args.print_migrations)
                            + [f"database: {mask_url(settings.database_url)}"]))

    result = rebuild.run(settings, rebuild.RebuildParams(iterations=args.iterations, yes=args.yes),
                         for_terminal(args.quiet or args.json), report=report)
    return cli.finish(args, result)


if __name__ == "__main__":
    cli.entrypoint(main)
