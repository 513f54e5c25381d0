"""A symbol's key values for a trading date (the report's table) in the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from kapman import cli, registry
from kapman.db.connect import connect
from kapman.report.data import load_symbol_day
from kapman.report.keyvalues import key_values, terminal_table

COMMAND = registry.command("show")
EXAMPLES = f"""
  {COMMAND} AAPL                    # newest date with A2 values
  {COMMAND} SPY --date 2025-12-19
  {COMMAND} SPY --json              # the same values as one JSON object
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Print a symbol's key values for one trading date: price, the stored A2 indicators and "
                   f"the A3 dealer metrics (the table of {registry.command('report')}).", EXAMPLES)
    p.add_argument("symbol", help="the ticker symbol")
    p.add_argument("--date", type=cli.day_arg, metavar="YYYY-MM-DD",
                   help="trading date (default: the newest date with A2 values)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        day = load_symbol_day(conn, args.symbol, args.date)
    data = {"symbol": day.symbol, "date": day.day.isoformat(),
            "values": {f"{kv.group}.{kv.label}": kv.value for kv in key_values(day)}}
    cli.emit(args, terminal_table(day), data)
    return cli.EXIT_OK
