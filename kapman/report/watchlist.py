"""A watchlist's index page: every active symbol's report, linked from one sortable table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg

from kapman import registry
from kapman.errors import KapManError, UsageError
from kapman.progress import NullProgress, Progress
from kapman.report import page, symbol
from kapman.report.data import SymbolDay, load_symbol_day
from kapman.report.keyvalues import dig, fixed, fraction_pct, pct, usd

INDEX = "index.html"
COLUMNS = ["symbol", "date", "close", "net GEX", "position", "flip distance", "RSI 14", "HV 20d", "A3 status",
           "note"]
NUMERIC = [False, False, True, True, False, True, True, True, False, False]


@dataclass
class WatchlistPages:
    index: Path
    reports: dict[str, Path] = field(default_factory=dict)
    #: symbol -> why it has no report (the message names the step to run)
    missing: dict[str, str] = field(default_factory=dict)


def members(conn: psycopg.Connection, name: str) -> list[str]:
    rows = conn.execute("SELECT symbol FROM public.watchlists WHERE watchlist_id = %s AND active ORDER BY symbol",
                        (name,)).fetchall()
    if not rows:
        known = [r[0] for r in conn.execute("SELECT DISTINCT watchlist_id FROM public.watchlists WHERE active "
                                            "ORDER BY 1").fetchall()]
        raise UsageError(f"watchlist {name} has no active symbols (active watchlists: "
                         f"{', '.join(known) or 'none'}); run {registry.command('watchlists')}")
    return [r[0] for r in rows]


def report_name(sym: str) -> str:
    """A file name for the symbol's page, distinct for every symbol even on a case-insensitive file
    system: a lower-case letter is marked with a ``_`` before it (``AAp`` is ``AA_p.html``, beside
    ``AAP.html``); an index's ``I:`` is ``I-``; symbols like BRK.B keep their dot."""
    return "".join(f"_{c}" if c.islower() else c if c.isalnum() or c in ".-" else "-" for c in sym) + ".html"


def _cell(text: str, key: object | None) -> tuple[str, object | None]:
    """A cell's HTML and its sort key ('' sorts a missing value last)."""
    return page.esc(text), "" if key is None else key


def _row(sym: str, day: SymbolDay | None, href: str | None, note: str) -> list[tuple[str, object | None]]:
    if day is None:
        return [_cell(sym, sym), *[_cell("-", None)] * (len(COLUMNS) - 2), _cell(note, note)]
    d = day.dealer
    rsi = dig(day.technical, "momentum", "rsi", "rsi")
    hv, flip = day.price.get("hv"), d.get("gamma_flip_distance_pct")
    close = day.bars.close[-1] if day.bars.close else None
    return [(f'<a href="{page.esc(href)}">{page.esc(sym)}</a>', sym), _cell(str(day.day), str(day.day)),
            _cell(fixed(2)(close), close), _cell(usd(d.get("gex_net")), d.get("gex_net")),
            _cell(d.get("position") or "-", d.get("position")), _cell(pct(flip), flip),
            _cell(fixed(1)(rsi), rsi), _cell(fraction_pct(hv), hv), _cell(d.get("status") or "-", d.get("status")),
            _cell(", ".join(f"no {section}" for section in day.missing), ", ".join(day.missing))]


def write_watchlist(conn: psycopg.Connection, name: str, day: date | None, out_dir: Path,
                    progress: Progress | None = None) -> WatchlistPages:
    """Each member's report into ``out_dir`` and the index linking them; a member without the data
    a report needs is listed with the reason instead of a link."""
    progress = progress or NullProgress()
    result = WatchlistPages(index=out_dir / INDEX)
    rows = []
    symbols = members(conn, name)
    plotly_src = page.write_plotly(out_dir)     # once for every page
    progress.start(len(symbols), f"reports of {name}", unit="symbols")
    for sym in symbols:
        try:
            loaded = load_symbol_day(conn, sym, day)
        except KapManError as exc:
            result.missing[sym] = exc.message
            rows.append(_row(sym, None, None, exc.message))
        else:
            path = page.write(out_dir / report_name(loaded.symbol), symbol.render(loaded, plotly_src))
            result.reports[sym] = path
            rows.append(_row(sym, loaded, path.name, ""))
        progress.advance()
    progress.close()
    body = (f"<h1>Watchlist {page.esc(name)}</h1>"
            f'<div class="sub">{len(result.reports)} reports, {len(result.missing)} symbols without one; '
            "click a column header to sort</div>"
            + page.table(COLUMNS, rows, sortable=True, numeric=NUMERIC))
    page.write(result.index, page.document(f"Watchlist {name} - KapMan", body, charts=False, sortable=True))
    return result
