"""Deterministic identifiers, so a repave reproduces every id exactly."""

from __future__ import annotations

import uuid

#: KapMan's namespace for ticker ids (uuid5 of the DNS name kapman.tickers).
TICKER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "kapman.tickers")


def ticker_id(symbol: str) -> uuid.UUID:
    """The id of a ticker symbol: UUID v5 of the symbol exactly as the source writes it.

    Symbols are case-sensitive (``AAp`` is a preferred, ``AAP`` another company), so the case is
    kept; an upper-case symbol has the same id it always had.
    """
    return uuid.uuid5(TICKER_NAMESPACE, symbol)
