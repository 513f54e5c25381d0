"""The report step: which page to write, where, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg

from kapman.config import Settings
from kapman.db.connect import connect
from kapman.errors import UsageError
from kapman.progress import NullProgress, Progress
from kapman.report import page, symbol, warehouse
from kapman.report.data import load_symbol_day
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


def run(settings: Settings, params: ReportParams, progress: Progress | None = None) -> StepResult:
    """Write the asked page(s).  A single symbol's missing data raises UsageError naming the step to
    run; a watchlist member's is a failure of that symbol (its row on the index says why)."""
    result = StepResult("report", unit="symbols")
    with connect(settings.require_database_url()) as conn:
        if params.warehouse:
            _warehouse(conn, params, result)
        elif params.watchlist:
            _watchlist(conn, params, result, progress or NullProgress())
        else:
            _symbol(conn, params, result)
    return result


def _symbol(conn: psycopg.Connection, params: ReportParams, result: StepResult) -> None:
    assert params.symbol is not None
    day = load_symbol_day(conn, params.symbol, params.day)
    default = DEFAULT_DIR / report_name(f"{day.symbol}-{day.day}")
    out = page.write(page.target(params.out, default), symbol.render(day))
    result.done = 1
    result.details["pages"] = [str(out)]
    result.headline = f"wrote {out} ({day.symbol} {day.day}, A3 {day.dealer.get('status') or 'none'})"


def _watchlist(conn: psycopg.Connection, params: ReportParams, result: StepResult, progress: Progress) -> None:
    assert params.watchlist is not None
    if params.out is not None and params.out.exists() and not params.out.is_dir():
        raise UsageError(f"--out {params.out} is a file; --watchlist writes a directory of pages")
    pages = write_watchlist(conn, params.watchlist, params.day,
                            params.out or DEFAULT_DIR / f"watchlist-{params.watchlist}", progress)
    result.done = len(pages.reports)
    for sym, why in pages.missing.items():
        result.fail(sym, why)
    result.details["pages"] = [str(p) for p in (pages.index, *pages.reports.values())]
    result.headline = f"wrote {pages.index} linking {len(pages.reports)} reports"


def _warehouse(conn: psycopg.Connection, params: ReportParams, result: StepResult) -> None:
    path, found = warehouse.write_warehouse(conn, page.target(params.out, DEFAULT_DIR / "warehouse.html"))
    result.unit = "pages"
    result.done = 1
    gaps = {g.dataset: sum(n for _, _, n in g.missing) for g in found}
    result.details.update(pages=[str(path)], gaps=gaps)
    result.headline = f"wrote {path} (missing trading days: {', '.join(f'{k} {v}' for k, v in gaps.items())})"
