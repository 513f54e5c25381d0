"""The report's charts as plotly.js figures (``{"data": [...], "layout": {...}}``); no I/O.

Figures are plain dicts in plotly.js's schema rather than plotly.py objects: the object model
validates and copies every property on every update (most of a page's render time with it, about
a second a page), while the browser tests check what plotly.js actually draws.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from kapman.calendar import is_trading_day
from kapman.report.data import SymbolDay

Figure = dict[str, Any]
Trace = dict[str, Any]

UP, DOWN, GREY = "#26a69a", "#ef5350", "rgba(100,116,139,0.6)"
MARKERS = {"spot": "#1f2937", "gamma flip": "#7c3aed", "call wall": UP, "put wall": DOWN, "max pain": "#f59e0b"}
LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}
AXIS: dict[str, Any] = {"gridcolor": "#e2e8f0", "zerolinecolor": "#94a3b8", "linecolor": "#cbd5e1",
                        "automargin": True}
STYLE: dict[str, Any] = {"paper_bgcolor": "white", "plot_bgcolor": "white", "legend": LEGEND,
                         "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#334155"},
                         "margin": {"l": 70, "r": 60, "t": 80, "b": 40}}


def figure(data: list[Trace], **layout: Any) -> Figure:
    return {"data": data, "layout": {**STYLE, **layout}}


def axis(**kw: Any) -> dict[str, Any]:
    return {**AXIS, **kw}


def title(text: str) -> dict[str, Any]:
    return {"text": text, "x": 0.01, "xanchor": "left"}


def signed(values: list[float | None]) -> list[str]:
    return [UP if (v or 0) >= 0 else DOWN for v in values]


def note(text: str) -> dict[str, Any]:
    """A line of text in the middle of an empty chart."""
    return {"text": text, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "font": {"size": 14, "color": "#64748b"}}


def closed_weekdays(start: date, end: date) -> list[str]:
    """Holidays in [start, end], so the price axis skips them like weekends."""
    days, day = [], start
    while day <= end:
        if day.weekday() < 5 and not is_trading_day(day):
            days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def row_domains(heights: list[float], gap: float) -> list[list[float]]:
    """Vertical [bottom, top] paper ranges of stacked panels, top panel first."""
    scale = (1 - gap * (len(heights) - 1)) / sum(heights)
    top, out = 1.0, []
    for h in heights:
        bottom = max(0.0, top - h * scale)
        out.append([round(bottom, 6), round(top, 6)])
        top = bottom - gap
    return out


def _series(day: SymbolDay, column: str) -> tuple[list[str], list[float | None]]:
    dates = sorted(day.indicators)
    return [d.isoformat() for d in dates], [day.indicators[d][column] for d in dates]


def _line(day: SymbolDay, column: str, name: str, color: str, yaxis: str = "y", **kw: Any) -> Trace:
    x, y = _series(day, column)
    # A2 stores values only on the dates it was run for: markers keep a lone date visible.
    return {"type": "scatter", "x": x, "y": y, "name": name, "mode": "lines+markers", "marker": {"size": 4},
            "connectgaps": True, "line": {"color": color, "width": 1.5}, "yaxis": yaxis, **kw}


def price_figure(day: SymbolDay) -> Figure:
    """Candles with SMA 20/50/200 and Bollinger bands, then volume, RSI and MACD panels on one
    shared date axis; without any A2 values in the window, candles and volume alone (the page says
    which step fills the rest: empty indicator traces drew NaN paths and console errors)."""
    bars = day.bars
    x = [d.isoformat() for d in bars.dates]
    candles = {"type": "candlestick", "x": x, "open": bars.open, "high": bars.high, "low": bars.low,
               "close": bars.close, "name": day.symbol, "increasing": {"line": {"color": UP}},
               "decreasing": {"line": {"color": DOWN}}}
    volume = {"type": "bar", "x": x, "y": bars.volume, "name": "volume", "yaxis": "y2", "showlegend": False,
              "marker": {"color": [UP if c >= o else DOWN for o, c in zip(bars.open, bars.close, strict=True)]}}
    shapes: list[dict[str, Any]] = []
    if day.indicators:
        hx, hist = _series(day, "macd_diff")
        data = [
            _line(day, "bb_upper", "Bollinger upper", GREY),
            _line(day, "bb_lower", "Bollinger lower", GREY, fill="tonexty", fillcolor="rgba(148,163,184,0.15)"),
            candles,
            _line(day, "sma_20", "SMA 20", "#2563eb"),
            _line(day, "sma_50", "SMA 50", "#f59e0b"),
            _line(day, "sma_200", "SMA 200", "#7c3aed"),
            volume,
            _line(day, "rsi", "RSI 14", "#0ea5e9", "y3", showlegend=False),
            {"type": "bar", "x": hx, "y": hist, "name": "MACD histogram", "yaxis": "y4", "showlegend": False,
             "marker": {"color": signed(hist)}},
            _line(day, "macd", "MACD", "#2563eb", "y4", showlegend=False),
            _line(day, "macd_signal", "signal", "#f59e0b", "y4", showlegend=False),
        ]
        domains = row_domains([0.55, 0.15, 0.15, 0.15], 0.035)
        panels = {"yaxis3": axis(domain=domains[2], title={"text": "RSI 14"}, range=[0, 100]),
                  "yaxis4": axis(domain=domains[3], title={"text": "MACD"})}
        shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y3", "y0": v, "y1": v,
                   "line": {"dash": "dot", "color": "#94a3b8", "width": 1}} for v in (30, 70)]
    else:
        data, domains, panels = [candles, volume], row_domains([0.75, 0.25], 0.035), {}
    panels = {"yaxis": axis(domain=domains[0], title={"text": "price"}),
              "yaxis2": axis(domain=domains[1], title={"text": "volume"}), **panels}
    return figure(data, height=860 if day.indicators else 560, hovermode="x unified", shapes=shapes, **panels,
                  margin={"l": 70, "r": 20, "t": 40, "b": 30},
                  xaxis=axis(anchor="y4" if day.indicators else "y2", rangeslider={"visible": False},
                             rangebreaks=[{"bounds": ["sat", "mon"]},
                                          {"values": closed_weekdays(bars.dates[0], bars.dates[-1])}]))


def dealer_levels(dealer: dict[str, Any]) -> dict[str, float]:
    """The levels marked on the strike profile, by label; absent ones left out."""
    levels = {"spot": dealer.get("spot"), "gamma flip": dealer.get("gamma_flip"),
              "call wall": dealer.get("call_wall"), "put wall": dealer.get("put_wall"),
              "max pain": dealer.get("max_pain")}
    return {k: float(v) for k, v in levels.items() if isinstance(v, int | float)}


def strike_figure(day: SymbolDay) -> Figure:
    """Net GEX per strike with spot, gamma flip, walls and max pain as dashed vertical lines."""
    profile = day.dealer.get("strike_profile") or {}
    strikes, gex = profile.get("strikes") or [], profile.get("gex") or []
    data: list[Trace] = [{"type": "bar", "x": strikes, "y": gex, "name": "net GEX", "showlegend": False,
                          "marker": {"color": signed(gex)},
                          "hovertemplate": "strike %{x}<br>GEX $%{y:,.0f}<extra></extra>"}]
    # Each level is a line trace of its own, so the legend names it and hovering shows its value.
    low, high = min([0.0, *gex]) * 1.05, max([0.0, *gex]) * 1.05
    for label, level in sorted(dealer_levels(day.dealer).items(), key=lambda kv: kv[1]):
        data.append({"type": "scatter", "x": [level, level], "y": [low, high], "mode": "lines",
                     "name": f"{label} {level:,.2f}", "hovertemplate": f"{label} {level:,.2f}<extra></extra>",
                     "line": {"color": MARKERS[label], "width": 2, "dash": "dash"}})
    status = f"no strike profile: A3 status {day.dealer.get('status')} ({day.dealer.get('status_reason')})"
    return figure(data, height=420, title=title("GEX by strike (USD per 1% move)"),
                  xaxis=axis(title={"text": "strike"}), yaxis=axis(title={"text": "net GEX"}),
                  annotations=[] if strikes else [note(status)])


def bucket_figure(day: SymbolDay) -> Figure:
    """Net and gross GEX per days-to-expiry bucket."""
    buckets = day.dealer.get("gex_by_dte") or {}
    names = list(buckets)
    net = [(buckets[b] or {}).get("net") for b in names]
    gross = [(buckets[b] or {}).get("gross") for b in names]
    contracts = [(buckets[b] or {}).get("contracts") for b in names]
    data = [{"type": "bar", "x": names, "y": net, "name": "net", "marker": {"color": signed(net)},
             "customdata": contracts,
             "hovertemplate": "%{x} DTE<br>net $%{y:,.0f}<br>%{customdata} contracts<extra></extra>"},
            {"type": "bar", "x": names, "y": gross, "name": "gross", "marker": {"color": "rgba(100,116,139,0.45)"},
             "hovertemplate": "%{x} DTE<br>gross $%{y:,.0f}<extra></extra>"}]
    empty = not any(v is not None for v in net)
    return figure(data, height=360, title=title("GEX by days to expiry"), barmode="group",
                  xaxis=axis(title={"text": "days to expiry"}, type="category"), yaxis=axis(title={"text": "GEX"}),
                  annotations=[note("no GEX by expiry for this date")] if empty else [])


def history_figure(day: SymbolDay) -> Figure:
    """Net GEX (bars) with close and gamma flip (lines, right axis) across the stored snapshot dates."""
    h = day.history
    x = [d.isoformat() for d in h.dates]
    data = [{"type": "bar", "x": x, "y": h.gex_net, "name": "net GEX", "marker": {"color": signed(h.gex_net)}},
            {"type": "scatter", "x": x, "y": h.close, "name": "close", "mode": "lines+markers", "yaxis": "y2",
             "line": {"color": MARKERS["spot"]}},
            {"type": "scatter", "x": x, "y": h.gamma_flip, "name": "gamma flip", "mode": "lines+markers",
             "yaxis": "y2", "line": {"color": MARKERS["gamma flip"], "dash": "dash"}}]
    return figure(data, height=360, title=title("net GEX, gamma flip and close by snapshot date"),
                  xaxis=axis(type="category"), yaxis=axis(title={"text": "net GEX"}),
                  yaxis2=axis(title={"text": "price"}, overlaying="y", side="right", showgrid=False))


def symbol_figures(day: SymbolDay) -> dict[str, Figure]:
    """Div id -> figure, in page order: the price chart where there are bars (an index has none), the
    dealer charts only where A3 has a document for the date."""
    figures = {"price": price_figure(day)} if day.bars.dates else {}
    if day.dealer:
        figures.update({"gex-strike": strike_figure(day), "gex-expiry": bucket_figure(day)})
    if day.history.dates:
        figures["history"] = history_figure(day)
    return figures
