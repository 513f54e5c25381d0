"""Polygon/Massive REST endpoints KapMan reads: reference tickers and splits, option-chain snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from kapman.config import Settings
from kapman.providers.http import PolygonHTTP, RawPage

#: The API's maximum page sizes (the defaults are 100, 10 and 10).
TICKERS_PAGE = 1000
SPLITS_PAGE = 1000
OPTIONS_PAGE = 250


class PolygonClient:
    def __init__(self, http: PolygonHTTP) -> None:
        self.http = http

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PolygonClient:
        kw: dict[str, Any] = {
            "rate_limit": settings.polygon_rate_limit,
            "connect_timeout": settings.polygon_connect_timeout,
            "read_timeout": settings.polygon_read_timeout,
            "max_retries": settings.polygon_max_retries,
        }
        kw.update(overrides)
        return cls(PolygonHTTP(settings.polygon_base_url, settings.require_polygon_api_key(), **kw))

    def close(self) -> None:
        self.http.close()

    def ticker_pages(self, *, market: str = "stocks", active: bool = True) -> Iterator[list[dict]]:
        """Every reference record of the market, page by page (sorted by ticker)."""
        params = {"market": market, "active": str(active).lower(), "limit": TICKERS_PAGE,
                  "sort": "ticker", "order": "asc"}
        yield from self.http.paginate("/v3/reference/tickers", params)

    def split_pages(self, *, executed_from: str | None = None) -> Iterator[list[dict]]:
        """Every split (executed on or after ``executed_from``, YYYY-MM-DD), page by page."""
        params: dict[str, Any] = {"limit": SPLITS_PAGE, "sort": "execution_date", "order": "asc"}
        if executed_from:
            params["execution_date.gte"] = executed_from
        yield from self.http.paginate("/v3/reference/splits", params)

    def option_chain_pages(self, underlying: str, *, expiration_gte: str | None = None) -> Iterator[list[dict]]:
        """The underlying's whole option chain as of now, page by page."""
        params: dict[str, Any] = {"limit": OPTIONS_PAGE}
        if expiration_gte:
            params["expiration_date.gte"] = expiration_gte
        path = f"/v3/snapshot/options/{quote(underlying, safe='')}"
        yield from self.http.paginate(path, params, symbol=underlying)

    def option_chain_bodies(self, underlying: str) -> Iterator[RawPage]:
        """``option_chain_pages`` undecoded, for decoding elsewhere (see ``PolygonHTTP.paginate_raw``)."""
        path = f"/v3/snapshot/options/{quote(underlying, safe='')}"
        yield from self.http.paginate_raw(path, {"limit": OPTIONS_PAGE}, symbol=underlying)
