"""``kapman screen EXPR``: the symbols whose stored values on a date satisfy an expression.

The language is kapman.data.expression's; the values are kapman.data's flattened columns, read for
the date (and watchlist) in one COPY and filtered with pyarrow, so a full-market date takes well
under a second.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from kapman import calendar, cli
from kapman.data import api
from kapman.data.columns import COLUMNS
from kapman.data.expression import Expression, parse
from kapman.db.connect import connect
from kapman.errors import InputError
from kapman.symbols import is_index
from kapman.views.table import plain, table_text

EXAMPLES = """
  kapman screen "rsi < 30 and short_gamma" --watchlist mvp
  kapman screen "momentum.rsi.rsi > 70 or trend.adx.adx >= 25" --date 2025-12-19 --csv > hot.csv
  kapman screen "position = long_gamma and gex_net > 1e9 and not close < trend.sma.sma_200" --json
  kapman screen --columns                      # every column name the expression may use
"""

DESCRIPTION = """Print the symbols whose stored values on a trading date satisfy EXPR.

EXPR compares the flattened columns of daily_snapshots (the A2 indicators by path or last part:
momentum.rsi.rsi or rsi; the price metrics rvol, vsi, hv, close; the A3 scalars gex_net, position,
gamma_flip, call_wall ...) with numbers, quoted strings, another column (close < trend.sma.sma_200)
or the position labels long_gamma, short_gamma, neutral (a bare label means position = label),
with < <= > >= = != ; joined by and,
or, not and parentheses; COLUMN is null / is not null. The date columns (max_pain_expiration ...)
compare with a quoted 'YYYY-MM-DD', dealer_snapshot_time with a quoted date or ISO 8601 time. A
missing value satisfies no comparison, nor its negation (rsi is null finds it). A date on which a
family the expression reads (A2, A3) has no values at all is refused, naming the step that fills it.
An unknown column is refused with the closest names.
Output: a table of the matching symbols with the columns the expression reads (--csv: CSV; --json:
one object)."""


def newest_date(conn: psycopg.Connection) -> date:
    # max(time), then its date: the chunks' time index answers it; max() of the date read every row (~0.1 s
    # per 300k rows, over a second on a full market's history)
    found = conn.execute("SELECT (max(time) AT TIME ZONE 'America/New_York')::date "
                         "FROM public.daily_snapshots").fetchone()
    if not found or found[0] is None:
        raise InputError("daily_snapshots is empty: nothing to screen", hint="compute A2 first: kapman a2")
    return found[0]


def screen(conn: psycopg.Connection, expression: Expression, day: date | None = None,
           watchlist: str | None = None) -> tuple[date, int, pa.Table]:
    """(the date, rows screened, the matching rows: symbol and the expression's columns)."""
    day = day or newest_date(conn)
    table = api.snapshots(conn, watchlist=watchlist, date=day, columns=list(expression.columns), arrow=True)
    if not table.num_rows:
        if not calendar.is_trading_day(day):  # nothing is ever computed for it: name a date that has values
            raise InputError(f"{day} is not a trading day: no A2 or A3 values are computed for it",
                             hint=f"the newest date with values is {newest_date(conn)}")
        # imported only on this path: the report's modules are not needed to screen
        from kapman.report.data import checked_day
        from kapman.report.watchlist import members
        checked_day(conn, day)   # after today or before the retention window: A2 cannot compute it either
        if watchlist is not None:   # one whose symbols were all removed says so, as report --watchlist does
            members(conn, watchlist)
        raise InputError(f"no A2 or A3 values stored for {day}" + (f" on watchlist {watchlist}" if watchlist else ""),
                         hint=f"kapman a2 --date {day} (and kapman a3 for the dealer columns)")
    assert isinstance(table, pa.Table)
    _families_stored(conn, expression, day, watchlist, table.column("symbol").to_pylist())
    return day, table.num_rows, table.filter(expression.mask(table)).drop_columns(["date"])


#: Where each family of columns is stored, and the step that fills it.
_FAMILIES = {"a2": ("technical_indicators_json IS NOT NULL OR price_metrics_json IS NOT NULL", "A2", "a2"),
             "a3": ("dealer_metrics_json IS NOT NULL", "A3", "a3")}


def _families_stored(conn: psycopg.Connection, expression: Expression, day: date, watchlist: str | None,
                     symbols: list[str]) -> None:
    """Refuse a screen that reads a family (A2 or A3) with no values at all on the date: every comparison on
    it would be false, and "0 of N symbols match" would read as an answer (A3 not yet run for the day).
    ``symbols`` are those screened: indices alone never have A2, which no run of it changes."""
    families = sorted({COLUMNS[c].family for c in expression.columns})
    where = sql.SQL("{} AND {}").format(api.scope(conn, None, watchlist).on("ticker_id"),
                                        api.Dates(day, day).on_time("time"))
    tests = sql.SQL(", ").join(sql.SQL(f"bool_or({_FAMILIES[f][0]})") for f in families)
    found = conn.execute(sql.SQL("SELECT {} FROM public.daily_snapshots WHERE {}").format(tests, where)).fetchone()
    for family, stored in zip(families, found or (), strict=True):
        if not stored:
            read = ", ".join(c for c in expression.columns if COLUMNS[c].family == family)
            _, label, step = _FAMILIES[family]
            if family == "a2" and all(is_index(s) for s in symbols):
                raise InputError(f"the symbols screened are indices, which have no A2 values (the stock flat files "
                                 f"hold no index bars): the expression reads {read}")
            raise InputError(f"no {label} values stored for {day}" + (f" on watchlist {watchlist}" if watchlist else "")
                             + f": the expression reads {read}", hint=f"kapman {step} --date {day}")


def columns_text(columns: list[dict[str, Any]]) -> str:
    return "\n".join(c["name"] + (f"  ({c['short']})" if c["short"] else "") + f"  {c['type']}" for c in columns)


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m kapman.screen", DESCRIPTION, EXAMPLES)
    p.add_argument("expression", nargs="?", metavar="EXPR", help="what to screen for (quote it)")
    p.add_argument("--date", type=cli.day_arg, action=cli.Once, metavar="YYYY-MM-DD",
                   help="trading date (default: the newest date in daily_snapshots)")
    p.add_argument("--watchlist", metavar="NAME", help="only this watchlist's symbols")
    p.add_argument("--csv", action="store_true", help="print CSV (a header line, then one line a symbol)")
    p.add_argument("--columns", action="store_true", help="list the column names EXPR may use, and exit")
    args = p.parse_args(argv)
    if args.columns:
        listed = api.describe()
        cli.emit(args, columns_text(listed), {"columns": listed})
        return cli.EXIT_OK
    if not args.expression:
        p.error("EXPR is required (or --columns)")
    expression = parse(args.expression)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        day, screened, matched = screen(conn, expression, args.date, args.watchlist)
    rows = [{k: plain(v) for k, v in r.items()} for r in matched.to_pylist()]
    names = matched.column_names
    if args.csv and not args.json:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([[("" if r[n] is None else r[n]) for n in names] for r in rows])
        print(out.getvalue(), end="")
        return cli.EXIT_OK
    summary = f"{len(rows)} of {screened} symbols on {day} match {args.expression}"
    text = (table_text(rows, names) + "\n" if rows else "") + summary
    cli.emit(args, text, {"date": day.isoformat(), "expression": args.expression, "watchlist": args.watchlist,
                          "screened": screened, "matched": len(rows), "rows": rows})
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
