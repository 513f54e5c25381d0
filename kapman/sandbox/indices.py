"""Index underlyings (the vendor's ``I:`` namespace) and their option chains.

An index has a reference record (``market: indices``), a level, and an option chain served from
``/v3/snapshot/options/I:SPX``: every root under the one underlying, as the vendor lists them.
The monthly contracts (third Friday) carry the AM-settled root (``SPX``: settled on the next
open's prices, trading ends the day before), the others the PM-settled weekly root (``SPXW``);
all are European and cash-settled, and ``underlying_asset`` carries the index ``value`` (an index
has no ``price``).  No bars: the stock flat files hold no index.  Simplification: VIX's monthlies
also fall on third Fridays here (the real ones expire on Wednesdays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

from kapman.clock import ny_date_of
from kapman.sandbox import options
from kapman.sandbox.profiles import TIDY, Profile


@dataclass(frozen=True)
class Index:
    symbol: str
    name: str
    level: float      # around which the sandbox's level moves
    vol: float
    am_root: str      # monthlies, settled at the open
    pm_root: str      # weeklies, settled at the close
    contracts: int


INDICES: dict[str, Index] = {i.symbol: i for i in (
    Index("I:SPX", "S&P 500", 6000.0, 0.16, "SPX", "SPXW", 900),
    Index("I:NDX", "Nasdaq-100", 21000.0, 0.20, "NDX", "NDXP", 600),
    Index("I:RUT", "Russell 2000", 2300.0, 0.22, "RUT", "RUTW", 500),
    Index("I:VIX", "Cboe Volatility Index", 16.0, 0.90, "VIX", "VIXW", 300),
)}


def reference_records(updated: str) -> list[dict]:
    """``/v3/reference/tickers?market=indices`` records."""
    return [{"ticker": i.symbol, "name": i.name, "market": "indices", "locale": "us", "active": True,
             "source_feed": "CboeGlobalIndices", "type": "INDEX", "last_updated_utc": updated}
            for i in INDICES.values()]


def level(symbol: str, as_of: datetime) -> float:
    """The index level at an instant: a slow deterministic wave around its base."""
    index = INDICES[symbol]
    day = ny_date_of(as_of).toordinal()
    return round(index.level * (1.0 + 0.03 * math.sin(day / 9.0) + 0.01 * math.sin(day / 2.3)), 2)


def is_monthly(expiry: date) -> bool:
    """A third Friday (or the Thursday before it when Friday is a holiday)."""
    return 15 <= expiry.day <= 21 and expiry.weekday() == 4 or 14 <= expiry.day <= 20 and expiry.weekday() == 3


def chain(seed: int, symbol: str, as_of: datetime, profile: Profile = TIDY) -> list[dict]:
    """Snapshot results of every root of the index, as of ``as_of``."""
    index = INDICES[symbol]
    spot = level(symbol, as_of)
    results = options.option_chain(seed, symbol, spot, index.vol, as_of, index.contracts, quirks=False,
                                   profile=profile)
    for result in results:
        d = result["details"]
        expiry = date.fromisoformat(d["expiration_date"])
        root = index.am_root if is_monthly(expiry) else index.pm_root
        d["ticker"] = options.occ_ticker(root, expiry, d["contract_type"][0].upper(), float(d["strike_price"]))
        d["exercise_style"] = "european"
        asset = result["underlying_asset"]
        asset.pop("price", None)
        asset.pop("change_to_break_even", None)
        asset["value"] = spot
    return results
