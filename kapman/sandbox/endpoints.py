"""The REST endpoints' query semantics: parameter parsing, filters, sorting, cursors.

Kept apart from the HTTP plumbing in ``rest.py`` so the rules can be read (and tested) alone.
"""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from kapman.clock import ny_date_of, session_close
from kapman.sandbox.market import Market

TICKER_SORTS = (
    "ticker",
    "name",
    "market",
    "locale",
    "primary_exchange",
    "type",
    "currency_name",
    "cik",
    "composite_figi",
    "share_class_figi",
    "last_updated_utc",
    "delisted_utc",
)
OPTION_SORTS = ("ticker", "expiration_date", "strike_price")
SPLIT_SORTS = ("execution_date", "ticker")
RANGE_SUFFIXES = ("", ".gt", ".gte", ".lt", ".lte")


class BadQuery(ValueError):
    """A parameter the API would refuse with 400."""


def encode_cursor(path: str, query: dict[str, str], offset: int) -> str:
    """The whole original query plus the position, so a follow-up sends nothing else."""
    raw = json.dumps({"p": path, "q": query, "o": offset}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(path: str, cursor: str) -> tuple[dict[str, str], int]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        query, offset = dict(state["q"]), int(state["o"])
    except (ValueError, KeyError, TypeError):
        raise BadQuery("cursor: invalid cursor") from None
    if state.get("p") != path or offset < 0:
        raise BadQuery("cursor: cursor does not belong to this endpoint")
    return query, offset


def parse_limit(query: dict[str, str], default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise BadQuery(f"limit: invalid integer {raw!r}") from None
    if not 1 <= limit <= maximum:
        raise BadQuery(f"limit: must be between 1 and {maximum}")
    return limit


def _bool(query: dict[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise BadQuery(f"{name}: invalid boolean {raw!r}")
    return raw.lower() == "true"


def _order(query: dict[str, str], sorts: tuple[str, ...], default: str) -> tuple[str, bool]:
    sort = query.get("sort") or default
    if sort not in sorts:
        raise BadQuery(f"sort: invalid value {sort!r}")
    order = (query.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise BadQuery(f"order: invalid value {order!r}")
    return sort, order == "desc"


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "": operator.eq,
    ".gt": operator.gt,
    ".gte": operator.ge,
    ".lt": operator.lt,
    ".lte": operator.le,
}


def _range_filter(query: dict[str, str], name: str, parse: Callable[[str], Any]) -> Callable[[Any], bool]:
    """``name``, ``name.gt`` ... ``name.lte`` combined into one predicate."""
    bounds: list[tuple[Callable[[Any, Any], bool], Any]] = []
    for suffix in RANGE_SUFFIXES:
        raw = query.get(name + suffix)
        if raw is None or raw == "":
            continue
        try:
            bounds.append((_OPS[suffix], parse(raw)))
        except ValueError:
            raise BadQuery(f"{name}{suffix}: invalid value {raw!r}") from None

    def check(value: Any) -> bool:
        return all(op(value, bound) for op, bound in bounds)

    return check


def tickers(market: Market, query: dict[str, str]) -> list[dict]:
    active = _bool(query, "active", True)
    sort, desc = _order(query, TICKER_SORTS, "ticker")
    in_range = _range_filter(query, "ticker", str)
    exact = {
        field: query[param]
        for param, field in (
            ("market", "market"),
            ("type", "type"),
            ("exchange", "primary_exchange"),
            ("cik", "cik"),
        )
        if query.get(param)
    }
    search = (query.get("search") or "").lower()
    records = market.index_records() if query.get("market") == "indices" else market.tickers
    out = [
        r
        for r in records
        if r["active"] == active
        and in_range(r["ticker"])
        and all(r.get(f) == v for f, v in exact.items())
        and (not search or search in r["ticker"].lower() or search in r["name"].lower())
    ]
    return sorted(out, key=lambda r: str(r.get(sort) or ""), reverse=desc)


def splits(market: Market, query: dict[str, str]) -> list[dict]:
    """``/v3/reference/splits``: ``ticker`` and ``execution_date`` ranges, ``reverse_split``, sorting."""
    ticker_ok = _range_filter(query, "ticker", str)
    day_ok = _range_filter(query, "execution_date", lambda s: date.fromisoformat(s).isoformat())
    reverse = query.get("reverse_split")
    only_reverse = None if reverse is None or reverse == "" else _bool(query, "reverse_split", False)
    sort, desc = _order(query, SPLIT_SORTS, "execution_date")
    out = [
        r
        for r in market.splits
        if ticker_ok(r["ticker"])
        and day_ok(r["execution_date"])
        and (only_reverse is None or (r["split_from"] > r["split_to"]) == only_reverse)
    ]
    return sorted(out, key=lambda r: (r[sort], r["ticker"], r["execution_date"]), reverse=desc)


def option_snapshots(market: Market, underlying: str, query: dict[str, str], now: datetime) -> list[dict]:
    strike_ok = _range_filter(query, "strike_price", float)
    expiry_ok = _range_filter(query, "expiration_date", lambda s: date.fromisoformat(s).isoformat())
    kind = query.get("contract_type")
    if kind and kind not in ("call", "put"):
        raise BadQuery(f"contract_type: invalid value {kind!r}")
    sort, desc = _order(query, OPTION_SORTS, "ticker")
    out = [
        r
        for r in market.option_chain(underlying, now)
        if strike_ok(r["details"]["strike_price"])
        and expiry_ok(r["details"]["expiration_date"])
        and (not kind or r["details"]["contract_type"] == kind)
    ]
    return sorted(out, key=lambda r: (r["details"][sort], r["details"]["ticker"]), reverse=desc)


def grouped_daily(market: Market, day_text: str, query: dict[str, str], now: datetime) -> dict:
    """The body without ``status``/``request_id``; no ``results`` key when there is no session."""
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise BadQuery(f"date: invalid date {day_text!r}") from None
    adjusted = _bool(query, "adjusted", True)
    # Nothing for sessions that have not closed yet on the server's clock.
    published = day < ny_date_of(now) or (day == ny_date_of(now) and now >= session_close(day))
    results = market.grouped_daily(day, adjusted=adjusted) if published else []
    body: dict = {"queryCount": len(results), "resultsCount": len(results), "adjusted": adjusted}
    if results:
        body["results"] = results
    return body
