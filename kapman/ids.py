"""Deterministic identifiers, so a repave reproduces every id exactly."""

from __future__ import annotations

import uuid

#: KapMan's namespace for ticker ids (uuid5 of the DNS name kapman.tickers).
TICKER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "kapman.tickers")


def ticker_id(symbol: str) -> uuid.UUID:
    """The id of a ticker symbol: UUID v5 of the upper-case symbol."""
    return uuid.uuid5(TICKER_NAMESPACE, symbol.upper())
