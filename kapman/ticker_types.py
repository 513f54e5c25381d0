"""Security type codes of the reference API, and which of them make KapMan's ticker universe."""

from __future__ import annotations

from kapman.errors import ConfigError

#: Every security type code of ``/v3/reference/tickers/types`` (market stocks).
KNOWN_TYPES = frozenset({
    "CS", "ADRC", "ADRP", "ADRR", "UNIT", "RIGHT", "PFD", "FUND", "SP", "WARRANT", "INDEX", "ETF", "ETN",
    "ETV", "ETS", "OS", "GDR", "OTHER", "NYRS", "AGEN", "EQLK", "BOND", "ADRW", "BASKET", "LT",
})
#: The exchange-traded equities a watchlist, a chart or an options chain refers to: common stock,
#: preferreds (their class-suffix symbols such as AAp trade with bars of their own), exchange-traded
#: funds, vehicles (commodity trusts: GLD, SLV), single-security ETFs and notes, depositary
#: receipts and registry shares.  Warrants, rights, units, funds, structured products, baskets and
#: the like are left out (KAPMAN_TICKER_TYPES or --types changes the set).
DEFAULT_TYPES = ("CS", "PFD", "ETF", "ETV", "ETS", "ETN", "ADRC", "ADRP", "ADRR", "NYRS", "GDR")


def parse_types(text: str, *, source: str) -> tuple[str, ...]:
    """``"CS, etf,ETV"`` -> ``("CS", "ETF", "ETV")``; an unknown or malformed code is an error naming ``source``."""
    codes = [c.strip() for c in text.split(",") if c.strip()]
    # ASCII first: no Unicode case mapping may turn a foreign letter into a valid code.
    bad = [c for c in codes if not c.isascii() or c.upper() not in KNOWN_TYPES]
    if bad or not codes:
        raise ConfigError(
            f"{source}: {'unknown security type ' + ', '.join(map(repr, bad)) if bad else 'no security type given'}",
            hint=f"use comma-separated codes of {', '.join(sorted(KNOWN_TYPES))}",
        )
    return tuple(dict.fromkeys(c.upper() for c in codes))
