"""The report's plotly figures, built from a SymbolDay; no I/O."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kapman.calendar import is_trading_day
from kapman.report.data import SymbolDay

TEMPLATE = "plotly_white"
UP, DOWN = "#26a69a", "#ef5350"
LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}
MARKERS = {"spot": "#1f2937", "gamma flip": "#7c3aed", "call wall": UP, "put wall": DOWN, "max pain": "#f59e0b"}


def closed_weekdays(start: date, end: date) -> list[str]:
    """Holidays in [start, end], so the price axis skips them like weekends."""
    days, day = [], start
    while day <= end:
        if day.weekday() < 5 and not is_trading_day(day):
            days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def _series(day: SymbolDay, column: str) -> tuple[list[str], list[float | None]]:
    dates = sorted(day.indicators)
    return [d.isoformat() for d in dates], [day.indicators[d][column] for d in dates]


def _line(day: SymbolDay, column: str, name: str, color: str, **kw: Any) -> go.Scatter:
    x, y = _series(day, column)
    # A2 stores values only on the dates it was run for: markers keep a lone date visible.
    return go.Scatter(x=x, y=y, name=name, mode="lines+markers", marker={"size": 4}, connectgaps=True,
                      line={"color": color, "width": 1.5}, **kw)


def price_figure(day: SymbolDay) -> go.Figure:
    """Candles with SMA 20/50/200 and Bollinger bands, then volume, RSI and MACD panels."""
    bars = day.bars
    x = [d.isoformat() for d in bars.dates]
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.55, 0.15, 0.15, 0.15],
                        subplot_titles=("", "volume", "RSI 14", "MACD 12/26/9"))
    fig.add_trace(_line(day, "bb_upper", "Bollinger upper", "rgba(100,116,139,0.6)"), 1, 1)
    fig.add_trace(_line(day, "bb_lower", "Bollinger lower", "rgba(100,116,139,0.6)", fill="tonexty",
                        fillcolor="rgba(148,163,184,0.15)"), 1, 1)
    fig.add_trace(go.Candlestick(x=x, open=bars.open, high=bars.high, low=bars.low, close=bars.close,
                                 name=day.symbol, increasing_line_color=UP, decreasing_line_color=DOWN), 1, 1)
    for column, name, color in (("sma_20", "SMA 20", "#2563eb"), ("sma_50", "SMA 50", "#f59e0b"),
                                ("sma_200", "SMA 200", "#7c3aed")):
        fig.add_trace(_line(day, column, name, color), 1, 1)
    colors = [UP if c >= o else DOWN for o, c in zip(bars.open, bars.close, strict=True)]
    fig.add_trace(go.Bar(x=x, y=bars.volume, name="volume", marker_color=colors, showlegend=False), 2, 1)
    fig.add_trace(_line(day, "rsi", "RSI", "#0ea5e9", showlegend=False), 3, 1)
    for level in (30, 70):
        fig.add_hline(y=level, line={"dash": "dot", "color": "#94a3b8", "width": 1}, row=3, col=1)
    hx, hist = _series(day, "macd_diff")
    fig.add_trace(go.Bar(x=hx, y=hist, name="MACD histogram", showlegend=False,
                         marker_color=[UP if (v or 0) >= 0 else DOWN for v in hist]), 4, 1)
    fig.add_trace(_line(day, "macd", "MACD", "#2563eb", showlegend=False), 4, 1)
    fig.add_trace(_line(day, "macd_signal", "signal", "#f59e0b", showlegend=False), 4, 1)
    fig.update_xaxes(rangebreaks=[{"bounds": ["sat", "mon"]},
                                  {"values": closed_weekdays(bars.dates[0], bars.dates[-1])}])
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_yaxes(range=[0, 100], row=3, col=1)
    fig.update_layout(template=TEMPLATE, height=860, margin={"l": 60, "r": 20, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": 1.04, "x": 0}, hovermode="x unified")
    return fig


def _note(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": "#64748b"})
    return fig


def dealer_levels(dealer: dict[str, Any]) -> dict[str, float]:
    """The levels marked on the strike profile, by label; absent ones left out."""
    levels = {"spot": dealer.get("spot"), "gamma flip": dealer.get("gamma_flip"),
              "call wall": dealer.get("call_wall"), "put wall": dealer.get("put_wall"),
              "max pain": dealer.get("max_pain")}
    return {k: float(v) for k, v in levels.items() if isinstance(v, int | float)}


def strike_figure(day: SymbolDay) -> go.Figure:
    """Net GEX per strike with spot, gamma flip, walls and max pain as vertical lines."""
    profile = day.dealer.get("strike_profile") or {}
    strikes, gex = profile.get("strikes") or [], profile.get("gex") or []
    colors = [UP if g >= 0 else DOWN for g in gex]
    fig = go.Figure(go.Bar(x=strikes, y=gex, name="net GEX", showlegend=False, marker_color=colors,
                           hovertemplate="strike %{x}<br>GEX $%{y:,.0f}<extra></extra>"))
    # Each level is a line trace of its own, so the legend names it and hovering shows its value.
    low, high = min([0.0, *gex]), max([0.0, *gex])
    for label, level in sorted(dealer_levels(day.dealer).items(), key=lambda kv: kv[1]):
        fig.add_trace(go.Scatter(x=[level, level], y=[low * 1.05, high * 1.05], mode="lines",
                                 name=f"{label} {level:,.2f}", hovertemplate=f"{label} {level:,.2f}<extra></extra>",
                                 line={"color": MARKERS[label], "width": 2, "dash": "dash"}))
    fig.update_layout(template=TEMPLATE, height=420, title="GEX by strike (USD per 1% move)",
                      xaxis_title="strike", yaxis_title="net GEX", legend=LEGEND,
                      margin={"l": 70, "r": 20, "t": 80, "b": 40})
    if not strikes:
        _note(fig, f"no strike profile: A3 status {day.dealer.get('status')} ({day.dealer.get('status_reason')})")
    return fig


def bucket_figure(day: SymbolDay) -> go.Figure:
    """Net and gross GEX per days-to-expiry bucket."""
    buckets = day.dealer.get("gex_by_dte") or {}
    names = list(buckets)
    net = [(buckets[b] or {}).get("net") for b in names]
    gross = [(buckets[b] or {}).get("gross") for b in names]
    contracts = [(buckets[b] or {}).get("contracts") for b in names]
    fig = go.Figure([
        go.Bar(x=names, y=net, name="net", marker_color=[UP if (v or 0) >= 0 else DOWN for v in net],
               customdata=contracts, hovertemplate="%{x} DTE<br>net $%{y:,.0f}<br>%{customdata} contracts"
                                                   "<extra></extra>"),
        go.Bar(x=names, y=gross, name="gross", marker_color="rgba(100,116,139,0.45)",
               hovertemplate="%{x} DTE<br>gross $%{y:,.0f}<extra></extra>"),
    ])
    fig.update_layout(template=TEMPLATE, height=360, title="GEX by days to expiry", barmode="group",
                      xaxis_title="days to expiry", yaxis_title="GEX", xaxis_type="category",
                      margin={"l": 70, "r": 20, "t": 80, "b": 40}, legend=LEGEND)
    if not any(v is not None for v in net):
        _note(fig, "no GEX by expiry for this date")
    return fig


def history_figure(day: SymbolDay) -> go.Figure:
    """Net GEX (bars) with close and gamma flip (lines) across the stored snapshot dates."""
    h = day.history
    x = [d.isoformat() for d in h.dates]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=x, y=h.gex_net, name="net GEX",
                         marker_color=[UP if (v or 0) >= 0 else DOWN for v in h.gex_net]), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=h.close, name="close", mode="lines+markers",
                             line={"color": MARKERS["spot"]}), secondary_y=True)
    fig.add_trace(go.Scatter(x=x, y=h.gamma_flip, name="gamma flip", mode="lines+markers",
                             line={"color": MARKERS["gamma flip"], "dash": "dash"}), secondary_y=True)
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="net GEX", secondary_y=False)
    fig.update_yaxes(title_text="price", secondary_y=True)
    fig.update_layout(template=TEMPLATE, height=360, title="net GEX, gamma flip and close by snapshot date",
                      margin={"l": 70, "r": 60, "t": 80, "b": 40}, legend=LEGEND)
    return fig


def symbol_figures(day: SymbolDay) -> dict[str, go.Figure]:
    """Div id -> figure, in page order."""
    return {"price": price_figure(day), "gex-strike": strike_figure(day), "gex-expiry": bucket_figure(day),
            "history": history_figure(day)}
