"""A symbol's report page: key values and the four charts of one trading date."""

from __future__ import annotations

from kapman.report import page
from kapman.report.charts import symbol_figures
from kapman.report.data import SymbolDay
from kapman.report.keyvalues import key_values


def render(day: SymbolDay, plotly_src: str | None = None) -> str:
    """The page; a section without its data is left out, one line saying which step fills it.
    ``plotly_src``: plotly.js from that file beside the page instead of inlined."""
    dealer = day.dealer
    status = dealer.get("status")
    warn = "".join(f'<p class="warn">{page.esc(why)}</p>' for why in day.missing.values())
    if dealer and status != "FULL":
        warn += (f'<p class="warn">A3 status {page.esc(status)}: {page.esc(dealer.get("status_reason"))}; '
                "dealer figures are partial or missing.</p>")
    window = f"{day.bars.dates[0]} .. {day.bars.dates[-1]}" if day.bars.dates else "none"
    if day.no_bars:
        warn += f'<p class="warn">{page.esc(day.no_bars)}.</p>'
    figures = symbol_figures(day)
    price = "Price, volume, RSI and MACD (A2 values as stored)" if day.indicators else "Price and volume"
    titles = {"price": price, "gex-strike": "Dealer gamma by strike",
              "gex-expiry": "Dealer gamma by expiry", "history": "Dealer gamma history"}
    charts = "".join(f"<h2>{page.esc(titles[k])}</h2>{page.chart(k, f)}" for k, f in figures.items())
    body = (f"<h1>{page.esc(day.symbol)} &middot; {day.day}</h1>"
            f'<div class="sub">daily bars {window} ({len(day.bars.dates)} bars); A2 values on '
            f"{len(day.indicators)} dates; A3 snapshots on {len(day.history.dates)} dates; "
            f"options snapshot {page.esc(dealer.get('snapshot_time') or '-')}</div>"
            f"{warn}<h2>Key values</h2>{page.key_value_tables(key_values(day))}{charts}")
    return page.document(f"{day.symbol} {day.day} - KapMan report", body, plotly_src=plotly_src)
