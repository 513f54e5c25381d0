"""Apply the pending migrations to a database in place, keeping its data."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.ops import migrate
from kapman.progress import for_terminal

COMMAND = registry.command("migrate")
EXAMPLES = f"""
  {COMMAND}                # after updating KapMan, when status says "not applied: NNNN_name.sql"
  {COMMAND} --json
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Apply the migrations in db/migrations that the database has not had, in place: every "
                   "row is kept. They run in one transaction with the rebuild's checks after them; it commits "
                   "only when every check passes and the schema's fingerprint is the one a fresh rebuild gives "
                   "(built in a scratch database beside it), else nothing is changed. A database newer than "
                   "this KapMan, or whose applied migrations were edited, is refused. Waits at most 30 s for a "
                   "table a running step holds.",
                   EXAMPLES)
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    return cli.finish(args, migrate.run(settings, migrate.MigrateParams(), for_terminal(args.quiet or args.json)))
