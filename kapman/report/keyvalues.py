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
    #: where the value is stored (``dealer_metrics_json.gex_net``), or ``derived.*`` for one computed here
    path: str = ""


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
    """Price, A2 and A3 figures of the report's date, in display order; a section without its data
    (``day.missing``) is left out."""
    bars, ta, dealer = day.bars, day.technical, day.dealer
    close = bars.close[-1] if bars.close else None   # an index has no bars (day.no_bars says why)
    change = (close / bars.close[-2] - 1) * 100 if close is not None and len(bars.close) > 1 and bars.close[-2] \
        else None
    spot = dealer.get("spot")
    flip, flip_distance = dealer.get("gamma_flip"), dealer.get("gamma_flip_distance_pct")
    call_wall, put_wall = dealer.get("call_wall"), dealer.get("put_wall")
    max_pain = dealer.get("max_pain")
    a2, pm, a3 = "technical_indicators_json", "price_metrics_json", "dealer_metrics_json"
    price: list[tuple[str, str, str, Any, Callable[[Any], str]]] = [
        ("price", "date", "ohlcv.date", day.day.isoformat(), text),
        ("price", "close", "ohlcv.close", close, fixed(2)),
        ("price", "change", "derived.change_pct", change, pct),
        ("price", "volume", "ohlcv.volume", bars.volume[-1] if bars.volume else None, volume),
    ]
    technical: list[tuple[str, str, str, Any, Callable[[Any], str]]] = [
        ("price", "relative volume", f"{pm}.rvol", day.price.get("rvol"), fixed(2)),
        ("price", "HV 20d", f"{pm}.hv", day.price.get("hv"), fraction_pct),
    ] + [("A2", label, f"{a2}.{'.'.join(path)}", dig(ta, *path), fmt) for label, path, fmt in (
        ("RSI 14", ("momentum", "rsi", "rsi"), fixed(1)),
        ("MACD", ("trend", "macd", "macd"), fixed(3)),
        ("MACD signal", ("trend", "macd", "macd_signal"), fixed(3)),
        ("SMA 20", ("trend", "sma", "sma_20"), fixed(2)),
        ("SMA 50", ("trend", "sma", "sma_50"), fixed(2)),
        ("SMA 200", ("trend", "sma", "sma_200"), fixed(2)),
        ("Bollinger upper", ("volatility", "bbands", "bollinger_hband"), fixed(2)),
        ("Bollinger lower", ("volatility", "bbands", "bollinger_lband"), fixed(2)),
        ("ATR 14", ("volatility", "atr", "average_true_range"), fixed(2)),
        ("ADX 14", ("trend", "adx", "adx"), fixed(1)))]
    dealers: list[tuple[str, str, str, Any, Callable[[Any], str]]] = [
        ("A3", "status", f"{a3}.status", dealer.get("status"), lambda v: text(_status(dealer))),
        ("A3", "spot", f"{a3}.spot", spot, fixed(2)),
        ("A3", "net GEX", f"{a3}.gex_net", dealer.get("gex_net"), usd),
        ("A3", "gross GEX", f"{a3}.gex_gross", dealer.get("gex_gross"), usd),
        ("A3", "position", f"{a3}.position", dealer.get("position"), text),
        ("A3", "gamma flip", f"{a3}.gamma_flip", flip, lambda v: _level(v, flip_distance)),
        ("A3", "call wall", f"{a3}.call_wall", call_wall, lambda v: _level(v, _distance(v, spot))),
        ("A3", "put wall", f"{a3}.put_wall", put_wall, lambda v: _level(v, _distance(v, spot))),
        ("A3", "max pain", f"{a3}.max_pain", max_pain,
         lambda v: _level(v, _distance(v, spot)) + (f" exp {dealer['max_pain_expiration']}"
                                                    if v is not None and dealer.get("max_pain_expiration") else "")),
        ("A3", "put/call OI", f"{a3}.put_call_oi_ratio", dealer.get("put_call_oi_ratio"), fixed(2)),
        ("A3", "ATM IV", f"{a3}.atm_iv", dealer.get("atm_iv"), fraction_pct),
        ("A3", "net DEX", f"{a3}.dex_net", dealer.get("dex_net"), usd),
        ("A3", "stale quotes", f"{a3}.counts.stale_quotes", dig(dealer, "counts", "stale_quotes"),
         lambda v: text(v) + (f" of {dealer['counts']['total']} (quoted before the session)" if v else "")),
        ("A3", "adjusted out", f"{a3}.counts.excluded.adjusted_deliverable",
         dig(dealer, "counts", "excluded", "adjusted_deliverable"), text),
    ]
    rows = price + (technical if "A2" not in day.missing else []) + (dealers if "A3" not in day.missing else [])
    return [KeyValue(group, label, value, fmt(value), path) for group, label, path, value, fmt in rows]


def stored_values(day: SymbolDay) -> dict[str, Any]:
    """The key values keyed by where each is stored (``show --json``), each as stored: A3's status and its
    reason are two keys, which the table shows as one (``LIMITED (few_eligible_contracts)``)."""
    values = {kv.path: kv.value for kv in key_values(day)}
    if "dealer_metrics_json.status" in values:
        values["dealer_metrics_json.status_reason"] = day.dealer.get("status_reason")
    return values


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
    lines += [f"  {why}" for why in day.missing.values()]
    return "\n".join(lines)
