"""The watchlist scope: which tickers options ingestion and dealer metrics work on.

The active watchlist symbols that name an active ticker, exactly (symbols are case-sensitive);
a symbol without a ticker, or whose ticker is inactive (delisted: kept only for its bars), is
left out with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import psycopg

from kapman import registry
from kapman.errors import UsageError
from kapman.symbols import capped, case_suggestions


@dataclass
class Scope:
    #: symbol -> ticker id, in symbol order.
    tickers: dict[str, UUID] = field(default_factory=dict)
    #: Active watchlist symbols left out, with the reason (no ticker, inactive ticker).
    skipped: dict[str, str] = field(default_factory=dict)


def _count(conn: psycopg.Connection, query: str) -> int:
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def _require_inputs(conn: psycopg.Connection, work: str) -> None:
    if not _count(conn, "SELECT count(*) FROM public.tickers"):
        raise UsageError(
            f"public.tickers is empty: {work} cannot run before tickers exist",
            hint=f"run {registry.mend('tickers')} first",
        )
    if not _count(conn, "SELECT count(*) FROM public.watchlists WHERE active"):
        raise UsageError(
            f"no active watchlist symbols: the {work} scope is the watchlists",
            hint=f"run {registry.mend('watchlists')} first",
        )


def _reason(ticker: UUID | None, active: bool | None, delisted: object) -> str | None:
    if ticker is None:
        return "no ticker"
    if not active:
        return f"inactive ticker (delisted {delisted:%Y-%m-%d})" if delisted else "inactive ticker"
    return None


def _check_requested(conn: psycopg.Connection, wanted: list[str], reasons: dict[str, str | None],
                     work: str) -> None:
    outside = [s for s in wanted if s not in reasons]
    no_ticker = [s for s in wanted if reasons.get(s) == "no ticker"]
    inactive = [f"{s} ({reasons[s]})" for s in wanted if (reasons.get(s) or "").startswith("inactive")]
    if not (outside or no_ticker or inactive):
        return
    near_ticker = case_suggestions(conn, no_ticker)
    no_ticker = [f"{s} (did you mean {near_ticker[s]}?)" if s in near_ticker else s for s in no_ticker]
    # A name outside the watchlists may be one of them written in another case.
    listed: dict[str, list[str]] = {}
    for symbol in reasons:
        listed.setdefault(symbol.upper(), []).append(symbol)
    near = {s: " or ".join(listed[s.upper()]) for s in outside if s.upper() in listed}
    named = [f"{s} (did you mean {near[s]}?)" if s in near else s for s in outside]
    parts = ([f"not in an active watchlist: {capped(named)}"] if outside else []) + (
        [f"no ticker: {capped(no_ticker)}"] if no_ticker else []) + (
        [f"inactive: {capped(inactive)}"] if inactive else [])
    raise UsageError(
        f"--symbols names symbols outside the {work} scope ({'; '.join(parts)})",
        hint="symbols are case-sensitive; add them to data/watchlists/*.txt and run "
             + registry.mend("watchlists") + (f", and {registry.mend('tickers')}" if no_ticker else ""),
    )


def resolve_scope(conn: psycopg.Connection, symbols: list[str] | None = None, *,
                  work: str = "options ingestion") -> Scope:
    """Active watchlist symbols with the ids of their active tickers; ``symbols`` narrows to a subset.

    The scope of every non-OHLCV step (options ingestion, dealer metrics); ``work`` names the
    step in the errors.
    """
    _require_inputs(conn, work)
    rows = conn.execute("""
        SELECT w.symbol, t.id, t.active, t.delisted_utc
        FROM (SELECT DISTINCT symbol FROM public.watchlists WHERE active) w
        LEFT JOIN public.tickers t ON t.symbol = w.symbol
        ORDER BY w.symbol""").fetchall()
    ids = {symbol: tid for symbol, tid, _, _ in rows}
    reasons = {symbol: _reason(tid, active, delisted) for symbol, tid, active, delisted in rows}
    if symbols is not None:
        wanted = sorted({s.strip() for s in symbols if s.strip()})
        if not wanted:
            raise UsageError("--symbols is empty", hint="pass e.g. --symbols AAPL,MSFT")
        _check_requested(conn, wanted, reasons, work)
        reasons = {s: reasons[s] for s in wanted}
    scope = Scope()
    near = case_suggestions(conn, [s for s, reason in reasons.items() if reason == "no ticker"])
    for symbol, reason in reasons.items():
        if reason:
            scope.skipped[symbol] = f"{reason} (did you mean {near[symbol]}?)" if symbol in near else reason
        else:
            scope.tickers[symbol] = ids[symbol]  # type: ignore[assignment]
    return scope
