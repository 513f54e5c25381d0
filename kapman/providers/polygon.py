"""Polygon/Massive REST endpoints KapMan reads: reference tickers and splits, option-chain snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from kapman.config import Settings
from kapman.providers.http import PolygonHTTP, RawPage, ServerClock, page_results

__all__ = ["OPTIONS_PAGE", "SPLITS_PAGE", "TICKERS_PAGE", "PolygonClient", "RawPage", "ServerClock", "page_results"]

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
            "request_deadline": settings.polygon_request_deadline,
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

    def option_chain_bodies(self, underlying: str) -> Iterator[RawPage]:
        """The underlying's whole option chain as of now, page by page, undecoded: decode each page
        with ``page_results`` wherever that is cheapest (see ``PolygonHTTP.paginate_raw``)."""
        yield from self.http.paginate_raw(self._chain_path(underlying), {"limit": OPTIONS_PAGE}, symbol=underlying)

    def chain_clock(self, underlying: str) -> ServerClock:
        """The server's clock as one request for a contract of ``underlying``'s chain tells it."""
        return self.http.server_clock(self._chain_path(underlying), {"limit": 1})

    @staticmethod
    def _chain_path(underlying: str) -> str:
        return f"/v3/snapshot/options/{quote(underlying, safe='')}"
