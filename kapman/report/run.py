"""The report step: which page to write, where, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg

from kapman.config import Settings
from kapman.errors import UsageError
from kapman.execute import Context, Definition, execute
from kapman.progress import Progress
from kapman.report import page, symbol, warehouse
from kapman.report.data import checked_day, load_symbol_day
from kapman.report.watchlist import report_name, write_watchlist
from kapman.step import StepResult

#: Where pages go when --out is not given (relative to the working directory).
DEFAULT_DIR = Path("reports")


@dataclass(frozen=True)
class ReportParams:
    symbol: str | None = None
    day: date | None = None
    watchlist: str | None = None
    warehouse: bool = False
    out: Path | None = None
    #: --out was written with a trailing '/': a directory, made if need be, never a file of that name
    out_is_dir: bool = False

    def validate(self) -> None:
        if sum((self.symbol is not None, self.watchlist is not None, self.warehouse)) != 1:
            raise UsageError("give one of a symbol, --watchlist NAME or --warehouse")
        if self.warehouse and self.day:
            raise UsageError("--date does not apply to --warehouse (it covers the whole retention window)")
        if self.watchlist is not None and not self.watchlist.strip():
            raise UsageError("--watchlist is empty", hint="name a watchlist (e.g. mvp)")



@dataclass
class ReportDetails:
    pages: list[str] = field(default_factory=list)
    gaps: dict[str, int] | None = None     # --warehouse: missing trading days per dataset
    empty: list[str] | None = None         # --warehouse: datasets with nothing stored in the window


def run(settings: Settings, params: ReportParams, progress: Progress | None = None) -> StepResult[ReportDetails]:
    """Write the asked page(s).  A single symbol's missing data raises UsageError naming the step to
    run; a watchlist member's is a failure of that symbol (its row on the index says why)."""
    return execute("report", settings, params, progress)


def _body(ctx: Context, params: ReportParams) -> None:
    if params.warehouse:
        _warehouse(ctx.conn, params, ctx.result)
    elif params.watchlist:
        _watchlist(ctx.conn, params, ctx.result, ctx.progress)
    else:
        _symbol(ctx.conn, params, ctx.result)


#: Reading the warehouse changes nothing in it: no ledger row.
STEP = Definition(ReportParams, _body, details=ReportDetails, ledger=False)


def _symbol(conn: psycopg.Connection, params: ReportParams, result: StepResult[ReportDetails]) -> None:
    assert params.symbol is not None
    day = load_symbol_day(conn, params.symbol, params.day)
    default = DEFAULT_DIR / report_name(f"{day.symbol}-{day.day}")
    out = page.write(page.target(params.out, default, directory=params.out_is_dir), symbol.render(day))
    result.done = 1
    result.details.pages = [str(out)]
    result.headline = f"wrote {out} ({day.symbol} {day.day}, A3 {day.dealer.get('status') or 'none'})"


def _watchlist(conn: psycopg.Connection, params: ReportParams, result: StepResult[ReportDetails],
               progress: Progress) -> None:
    assert params.watchlist is not None
    if params.out is not None and (params.out.exists() or params.out.is_symlink()) and not params.out.is_dir():
        raise UsageError(f"--out {params.out} is not a directory; --watchlist writes a directory of pages "
                         "(index.html and one page per symbol)")
    if params.out is not None and not params.out.exists() and params.out.suffix.lower() in (".html", ".htm"):
        raise UsageError(f"--out {params.out} names a page; --watchlist writes a directory of pages "
                         "(index.html and one page per symbol)", hint=f"e.g. --out {params.out.with_suffix('')}")
    if params.day is not None:   # a date no member can have (a Saturday, after today) is refused once, up front
        checked_day(conn, params.day)
    pages = write_watchlist(conn, params.watchlist, params.day,
                            params.out or DEFAULT_DIR / f"watchlist-{params.watchlist}", progress)
    result.done = len(pages.reports)
    for sym, why in pages.missing.items():
        result.fail(sym, why)
    result.details.pages = [str(p) for p in (pages.index, *pages.reports.values())]
    result.headline = f"wrote {pages.index} linking {len(pages.reports)} reports"


def _warehouse(conn: psycopg.Connection, params: ReportParams, result: StepResult[ReportDetails]) -> None:
    out = page.target(params.out, DEFAULT_DIR / "warehouse.html", directory=params.out_is_dir)
    path, found = warehouse.write_warehouse(conn, out)
    result.unit = "pages"
    result.done = 1
    gaps = {g.dataset: sum(n for _, _, n in g.missing) for g in found}
    empty = [g.dataset for g in found if g.first is None]   # not "0 missing": nothing there to miss from
    result.details.pages, result.details.gaps, result.details.empty = [str(path)], gaps, empty
    said = ", ".join(f"{k} none stored" if k in empty else f"{k} {v}" for k, v in gaps.items())
    result.headline = f"wrote {path} (missing trading days: {said})"
