"""A symbol's key values for a trading date (the report's table) in the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from kapman import cli
from kapman.db.connect import connect
from kapman.report.data import load_symbol_day
from kapman.report.keyvalues import stored_values, terminal_table

EXAMPLES = """
  python -m scripts.show AAPL                    # the newest date with a bar
  python -m scripts.show SPY --date 2025-12-19
  python -m scripts.show SPY --json              # the same values as one JSON object
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m scripts.show",
                   "Print a symbol's key values for one trading date: price, the stored A2 indicators and "
                   "the A3 dealer metrics (the table of python -m scripts.report). Any ticker with a bar on the "
                   "date: a section without its data is one line naming the step that fills it. Symbols are "
                   "case-sensitive. --json keys each value by where it is stored "
                   "(technical_indicators_json.momentum.rsi.rsi, dealer_metrics_json.gex_net, ohlcv.close).",
                   EXAMPLES)
    p.add_argument("symbol", help="the ticker symbol")
    p.add_argument("--date", type=date.fromisoformat, metavar="YYYY-MM-DD",
                   help="trading date (default: the newest date with a bar)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        day = load_symbol_day(conn, args.symbol, args.date)
    data = {"symbol": day.symbol, "date": day.day.isoformat(), "values": stored_values(day),
            "missing": day.missing}
    cli.emit(args, terminal_table(day), data)
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
