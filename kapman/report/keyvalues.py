"""The day's key values, labelled and formatted once for the report's table and ``kapman show``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kapman.report.data import SymbolDay


@dataclass(frozen=True)
class KeyValue:
    group: str
    label: str
    value: Any          # the raw value (float, str or None), for sorting
    text: str           # as printed


def dig(doc: dict[str, Any] | None, *path: str) -> Any:
    """``doc[a][b]...`` or None when any level is missing."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def usd(value: Any) -> str:
    """$1.23B, -$45.6M, $789K, $12.34: dealer exposures span ten orders of magnitude."""
    x = _number(value)
    if x is None:
        return "-"
    sign, x = ("-" if x < 0 else ""), abs(x)
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= size:
            return f"{sign}${x / size:.2f}{suffix}"
    return f"{sign}${x:.2f}"


def fixed(digits: int) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        x = _number(value)
        return "-" if x is None else f"{x:,.{digits}f}"
    return fmt


def pct(value: Any) -> str:
    x = _number(value)
    return "-" if x is None else f"{x:+.2f}%"


def fraction_pct(value: Any) -> str:
    """A decimal fraction (0.25) as a percentage (25.0%)."""
    x = _number(value)
    return "-" if x is None else f"{100 * x:.1f}%"


def volume(value: Any) -> str:
    x = _number(value)
    if x is None:
        return "-"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= size:
            return f"{x / size:.2f}{suffix}"
    return f"{x:.0f}"


def text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _level(value: Any, distance: Any) -> str:
    x = _number(value)
    if x is None:
        return "-"
    d = _number(distance)
    return f"{x:,.2f}" + (f" ({d:+.2f}%)" if d is not None else "")


def _distance(level: Any, spot: Any) -> float | None:
    a, b = _number(level), _number(spot)
    return None if a is None or b is None or b == 0 else (a - b) / b * 100


def key_values(day: SymbolDay) -> list[KeyValue]:
    """Price, A2 and A3 figures of the report's date, in display order."""
    bars, ta, dealer = day.bars, day.technical, day.dealer
    close = bars.close[-1] if bars.close else None   # an index has no bars (day.no_bars says why)
    change = (close / bars.close[-2] - 1) * 100 if close is not None and len(bars.close) > 1 and bars.close[-2] \
        else None
    spot = dealer.get("spot")
    flip, flip_distance = dealer.get("gamma_flip"), dealer.get("gamma_flip_distance_pct")
    call_wall, put_wall = dealer.get("call_wall"), dealer.get("put_wall")
    max_pain = dealer.get("max_pain")
    rows: list[tuple[str, str, Any, Callable[[Any], str]]] = [
        ("price", "date", day.day.isoformat(), text),
        ("price", "close", close, fixed(2)),
        ("price", "change", change, pct),
        ("price", "volume", bars.volume[-1] if bars.volume else None, volume),
        ("price", "relative volume", day.price.get("rvol"), fixed(2)),
        ("price", "HV 20d", day.price.get("hv"), fraction_pct),
        ("A2", "RSI 14", dig(ta, "momentum", "rsi", "rsi"), fixed(1)),
        ("A2", "MACD", dig(ta, "trend", "macd", "macd"), fixed(3)),
        ("A2", "MACD signal", dig(ta, "trend", "macd", "macd_signal"), fixed(3)),
        ("A2", "SMA 20", dig(ta, "trend", "sma", "sma_20"), fixed(2)),
        ("A2", "SMA 50", dig(ta, "trend", "sma", "sma_50"), fixed(2)),
        ("A2", "SMA 200", dig(ta, "trend", "sma", "sma_200"), fixed(2)),
        ("A2", "Bollinger upper", dig(ta, "volatility", "bbands", "bollinger_hband"), fixed(2)),
        ("A2", "Bollinger lower", dig(ta, "volatility", "bbands", "bollinger_lband"), fixed(2)),
        ("A2", "ATR 14", dig(ta, "volatility", "atr", "average_true_range"), fixed(2)),
        ("A2", "ADX 14", dig(ta, "trend", "adx", "adx"), fixed(1)),
        ("A3", "status", _status(dealer), text),
        ("A3", "spot", spot, fixed(2)),
        ("A3", "net GEX", dealer.get("gex_net"), usd),
        ("A3", "gross GEX", dealer.get("gex_gross"), usd),
        ("A3", "position", dealer.get("position"), text),
        ("A3", "gamma flip", flip, lambda v: _level(v, flip_distance)),
        ("A3", "call wall", call_wall, lambda v: _level(v, _distance(v, spot))),
        ("A3", "put wall", put_wall, lambda v: _level(v, _distance(v, spot))),
        ("A3", "max pain", max_pain,
         lambda v: _level(v, _distance(v, spot)) + (f" exp {dealer['max_pain_expiration']}"
                                                    if v is not None and dealer.get("max_pain_expiration") else "")),
        ("A3", "put/call OI", dealer.get("put_call_oi_ratio"), fixed(2)),
        ("A3", "ATM IV", dealer.get("atm_iv"), fraction_pct),
        ("A3", "net DEX", dealer.get("dex_net"), usd),
        ("A3", "stale quotes", dig(dealer, "counts", "stale_quotes"),
         lambda v: text(v) + (f" of {dealer['counts']['total']} (quoted before the session)" if v else "")),
        ("A3", "adjusted out", dig(dealer, "counts", "excluded", "adjusted_deliverable"), text),
    ]
    return [KeyValue(group, label, value, fmt(value)) for group, label, value, fmt in rows]


def _status(dealer: dict[str, Any]) -> str | None:
    status, reason = dealer.get("status"), dealer.get("status_reason")
    return f"{status} ({reason})" if status and reason else status


def terminal_table(day: SymbolDay) -> str:
    """The key values as a compact three-column table for the terminal."""
    rows = key_values(day)
    width = max(len(r.label) for r in rows)
    lines = [f"{day.symbol} {day.day}"]
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            lines.append(f"  {group}")
        lines.append(f"    {r.label:<{width}}  {r.text}")
    return "\n".join(lines)
