"""Is the warehouse healthy? A verdict per area, the command that mends each problem, an exit code."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.db.connect import connect
from kapman.ops import status

COMMAND = registry.command("status")
EXAMPLES = f"""
  {COMMAND}
  {COMMAND} --json | jq '.checks[] | select(.verdict != "OK")'
  KAPMAN_NOW=2025-12-19T22:00:00Z {COMMAND}     # as of a replayed sandbox evening
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Check schema (migrations, fingerprint, lifecycle and policy jobs), tickers freshness, OHLCV "
                   "coverage of every trading day in the retention window, the file ledger against the table, "
                   "option snapshots per session and symbol (a gap is lost data), A2 and A3 coverage (INVALID "
                   "counted), stored snapshots the archive lacks, and the last run of every step (a run killed "
                   "without a word is marked abandoned), by the warehouse's clock and the NYSE calendar. Each "
                   "area is OK, WARN or FAIL; each WARN and FAIL names the command that mends it. Exit 0 all OK, "
                   "1 some WARN, 2 some FAIL.", EXAMPLES)
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        result = status.report(conn, settings=settings)
    cli.emit(args, result.render(), result.as_dict())
    return result.exit_code
