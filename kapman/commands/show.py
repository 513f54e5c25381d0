"""A symbol's key values for a trading date (the report's table) in the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from kapman import cli, registry
from kapman.db.connect import connect
from kapman.jobs import split_checks
from kapman.jobs.a2_window import anchor
from kapman.report.data import load_symbol_day, ticker_of
from kapman.report.keyvalues import stored_values, terminal_table

COMMAND = registry.command("show")
EXAMPLES = f"""
  {COMMAND} AAPL                    # the newest date with a bar
  {COMMAND} SPY --date 2025-12-19
  {COMMAND} SPY --json              # the same values as one JSON object
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser(COMMAND,
                   "Print a symbol's key values for one trading date: price, the stored A2 indicators and "
                   f"the A3 dealer metrics (the table of {registry.command('report')}), and the split "
                   "records of the A2 window with whether each was applied. Any ticker with a bar on the "
                   "date: a section without its data is one line naming the step that fills it. Symbols are "
                   "case-sensitive. --json keys each value by where it is stored "
                   "(technical_indicators_json.momentum.rsi.rsi, dealer_metrics_json.gex_net, ohlcv.close).",
                   EXAMPLES)
    p.add_argument("symbol", help="the ticker symbol")
    p.add_argument("--date", type=cli.day_arg, action=cli.Once, metavar="YYYY-MM-DD",
                   help="trading date (default: the newest date with a bar)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        day = load_symbol_day(conn, args.symbol, args.date)
        splits = split_checks.checked(conn, anchor(day.day) - timedelta(days=1), day.day,
                                      ticker_of(conn, day.symbol)[0])
    data = {"symbol": day.symbol, "date": day.day.isoformat(), "values": stored_values(day),
            "missing": day.missing,
            "splits": [{"split": s.label(), "applied": s.applied, "verdict": s.verdict, "reason": s.reason}
                       for s in splits]}
    lines = ["  splits in the A2 window", *(
        f"    {s.label():<22}  {'applied' if s.applied else 'NOT applied'}: {s.verdict}, {s.reason}"
        for s in splits)] if splits else []
    if day.no_bars:   # an index: say why the price and A2 rows are empty
        data["no_bars"] = day.no_bars
        lines.append(f"  price and A2 are empty: {day.no_bars}")
    cli.emit(args, "\n".join([terminal_table(day), *lines]), data)
    return cli.EXIT_OK
