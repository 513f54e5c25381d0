"""The report step: which page to write, where, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kapman.cli import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL
from kapman.config import Settings
from kapman.db.connect import connect
from kapman.report import page, symbol, warehouse
from kapman.report.data import load_symbol_day
from kapman.report.watchlist import report_name, write_watchlist

#: Where pages go when --out is not given (relative to the working directory).
DEFAULT_DIR = Path("reports")


@dataclass(frozen=True)
class ReportParams:
    symbol: str | None = None
    day: date | None = None
    watchlist: str | None = None
    warehouse: bool = False
    out: Path | None = None


@dataclass
class ReportResult:
    pages: list[Path] = field(default_factory=list)
    #: symbol -> why it has no page
    missing: dict[str, str] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)
    headline: str = ""

    @property
    def exit_code(self) -> int:
        if self.missing:
            return EXIT_PARTIAL if len(self.pages) > 1 else EXIT_FAILURE
        return EXIT_OK

    def summary(self) -> str:
        lines = [self.headline] + [f"  no report for {s}: {why}" for s, why in sorted(self.missing.items())]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"status": {EXIT_OK: "ok", EXIT_PARTIAL: "partial", EXIT_FAILURE: "failed"}[self.exit_code],
                "pages": [str(p) for p in self.pages], "missing": self.missing, "gaps": self.gaps,
                "exit_code": self.exit_code}


def run(settings: Settings, params: ReportParams) -> ReportResult:
    result = ReportResult()
    with connect(settings.require_database_url()) as conn:
        if params.warehouse:
            path, found = warehouse.write_warehouse(conn, params.out or DEFAULT_DIR / "warehouse.html")
            result.pages.append(path)
            result.gaps = {g.dataset: sum(n for _, _, n in g.missing) for g in found}
            missing = ", ".join(f"{k} {v}" for k, v in result.gaps.items())
            result.headline = f"wrote {path} (missing trading days: {missing})"
        elif params.watchlist:
            pages = write_watchlist(conn, params.watchlist, params.day,
                                    params.out or DEFAULT_DIR / f"watchlist-{params.watchlist}")
            result.pages = [pages.index, *pages.reports.values()]
            result.missing = pages.missing
            result.headline = (f"wrote {pages.index} with {len(pages.reports)} reports"
                               f"{f', {len(pages.missing)} symbols without one' if pages.missing else ''}")
        else:
            assert params.symbol is not None
            day = load_symbol_day(conn, params.symbol, params.day)
            out = params.out or DEFAULT_DIR / report_name(f"{day.symbol}-{day.day}")
            result.pages.append(page.write(out, symbol.render(day)))
            result.headline = f"wrote {out} ({day.symbol} {day.day}, A3 {day.dealer.get('status')})"
    return result
