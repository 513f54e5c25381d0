"""One symbol's options chain as column arrays, and the eligibility filter for dealer metrics.

The A3 job reads the latest snapshot of a trading date from SQL, builds a ``pandas.DataFrame`` per
symbol with the columns below, and hands it (or a :class:`ChainArrays` built from it) to
:func:`kapman.metrics.dealer.compute_dealer_metrics`.

=====================  ========  ==========================================================
column                 required  meaning
=====================  ========  ==========================================================
expiration_date        yes       date, ISO string or datetime64; NULL -> invalid contract
strike                 yes       strike price; NULL or <= 0 -> invalid contract
option_type            yes       'C'/'P' (also 'call'/'put', any case); other -> invalid
open_interest          yes       contracts held at the previous session's end; NULL -> 0
volume                 no        contracts traded today; NULL -> 0
implied_volatility     no        decimal fraction (0.35 = 35 %); NULL or <= 0 -> none
delta, gamma           no        provider greeks per share; NULL -> none
shares_per_contract    no        deliverable shares; NULL or <= 0 -> 100; not 100 -> excluded
=====================  ========  ==========================================================

Other columns (contract symbol, theta, vega, ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from kapman.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

REQUIRED_COLUMNS = ("expiration_date", "strike", "option_type", "open_interest")
_CALL_CODES = frozenset({"C", "CALL"})
_PUT_CODES = frozenset({"P", "PUT"})
# Standard equity option; adjusted contracts carry their own value.
DEFAULT_MULTIPLIER = 100.0
#: The one rule for adjusted contracts (after a split, reverse split or merger the exchange keeps a
#: contract's strike and changes its deliverable, e.g. 12 GE shares at strike 13 beside a spot of
#: 104): a contract whose deliverable is not the standard 100 shares is kept out of every metric
#: (GEX, DEX, walls, flip, max pain, ratios, ATM IV) as ``adjusted_deliverable``.  Its listed strike
#: is not a price level of today's shares, and its deliverable may carry cash or other securities
#: the chain does not describe, so it is not converted.

#: Roots of AM-settled index options (the monthlies; the weeklies, SPXW, NDXP, RUTW, VIXW, settle
#: at the close).  A contract symbol is ``O:<root><yymmdd><C|P><strike>``.
AM_SETTLED_ROOTS = ("SPX", "NDX", "RUT", "VIX", "DJX")
#: From the 09:30 open to the 16:00 close.
OPEN_TO_CLOSE_HOURS = 6.5

#: Exclusion reasons in the order they are tested; a contract counts under the first that applies.
FILTER_REASONS = ("invalid_contract", "adjusted_deliverable", "expired", "beyond_max_dte",
                  "below_min_open_interest", "no_gamma_no_iv")


def _dates(col: pd.Series) -> npt.NDArray[np.datetime64]:
    """datetime64[D] of a date column; converts only the distinct values (a chain has a few dozen)."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return np.asarray(col.to_numpy(), dtype="datetime64[D]")
    codes, uniques = pd.factorize(col)
    days = np.append(np.asarray(list(uniques), dtype="datetime64[D]"), np.datetime64("NaT", "D"))
    return days[codes]  # code -1 (missing) picks the trailing NaT


def _kinds(col: pd.Series) -> tuple[BoolArray, BoolArray]:
    """(is_call, is_put) from 'C'/'P'/'call'/'put' in any case; classifies only the distinct values."""
    codes, uniques = pd.factorize(col)
    labels = [str(u).strip().upper() for u in uniques]
    calls = np.append(np.array([x in _CALL_CODES for x in labels], dtype=bool), False)
    puts = np.append(np.array([x in _PUT_CODES for x in labels], dtype=bool), False)
    return calls[codes], puts[codes]  # code -1 (missing) picks the trailing False


@dataclass(frozen=True, slots=True)
class ChainArrays:
    """Column arrays of one chain, all the same length; NaN marks a missing number."""

    expiration: npt.NDArray[np.datetime64]  # datetime64[D], NaT when missing
    strike: FloatArray
    is_call: BoolArray
    is_put: BoolArray  # neither flag set: an unknown contract type
    open_interest: FloatArray  # NULL already replaced by 0
    volume: FloatArray  # NULL already replaced by 0
    implied_volatility: FloatArray
    delta: FloatArray
    gamma: FloatArray
    multiplier: FloatArray  # NULL/<=0 already replaced by 100
    #: AM-settled index contracts (SPX monthlies): they settle at the expiration day's open, not
    #: its close.  None: every contract settles at the close.
    settles_at_open: BoolArray | None = None

    def __len__(self) -> int:
        return int(self.strike.shape[0])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ChainArrays:
        """Build from a DataFrame with the columns in the module docstring.

        An empty frame is an empty chain whatever its columns (a query that matched no rows).
        """
        if len(frame) == 0:
            nothing = np.empty(0)
            return cls(np.empty(0, dtype="datetime64[D]"), nothing, nothing.astype(bool),
                       nothing.astype(bool), nothing, nothing, nothing, nothing, nothing, nothing)
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(f"options chain lacks column(s) {', '.join(missing)}",
                             source="dealer metrics input",
                             hint="select " + ", ".join(REQUIRED_COLUMNS) + " from the snapshot")
        n = len(frame)

        def num(name: str) -> FloatArray:
            if name not in frame.columns:
                return np.full(n, np.nan)
            col = frame[name]
            if pd.api.types.is_float_dtype(col.dtype):
                return col.to_numpy(dtype=np.float64, na_value=np.nan)
            if pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_extension_array_dtype(col):
                return col.to_numpy(dtype=np.float64)
            # Decimal from NUMERIC, None, nullable integers, text.
            return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

        is_call, is_put = _kinds(frame["option_type"])
        multiplier = num("shares_per_contract")
        return cls(
            expiration=_dates(frame["expiration_date"]),
            strike=num("strike"),
            is_call=is_call,
            is_put=is_put,
            open_interest=np.nan_to_num(num("open_interest"), nan=0.0),
            volume=np.nan_to_num(num("volume"), nan=0.0),
            implied_volatility=num("implied_volatility"),
            delta=num("delta"),
            gamma=num("gamma"),
            multiplier=np.where(multiplier > 0.0, multiplier, DEFAULT_MULTIPLIER),
        )


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Masks over the chain and the count of contracts excluded for each reason."""

    dte: npt.NDArray[np.int64]  # calendar days from the trading date to expiration
    universe: BoolArray  # valid, not expired, within max_dte: the chain the ratios describe
    eligible: BoolArray  # universe, open interest at the minimum, gamma known or computable
    has_iv: BoolArray
    has_gamma: BoolArray
    excluded: dict[str, int]


def classify(chain: ChainArrays, *, as_of: date, max_dte: int, min_open_interest: float) -> Eligibility:
    """Apply the filters in :data:`FILTER_REASONS` order without a loop over contracts."""
    nat = np.isnat(chain.expiration)
    day = np.datetime64(as_of, "D")
    # NaT gives garbage here, but such rows are already invalid.
    dte = np.where(nat, 0, (chain.expiration - day).astype(np.int64))
    with np.errstate(invalid="ignore"):
        valid = (chain.is_call | chain.is_put) & (chain.strike > 0.0) & ~nat
        has_iv = np.isfinite(chain.implied_volatility) & (chain.implied_volatility > 0.0)
    has_gamma = np.isfinite(chain.gamma)
    adjusted = valid & (chain.multiplier != DEFAULT_MULTIPLIER)
    valid &= ~adjusted

    expired = valid & (dte < 0)
    beyond = valid & (dte > max_dte)
    universe = valid & ~expired & ~beyond
    low_oi = universe & ~(chain.open_interest >= min_open_interest)  # NaN counts as below
    no_gamma = universe & ~low_oi & ~has_gamma & ~has_iv
    eligible = universe & ~low_oi & ~no_gamma
    counts = (~valid & ~adjusted, adjusted, expired, beyond, low_oi, no_gamma)
    excluded = {reason: int(mask.sum()) for reason, mask in zip(FILTER_REASONS, counts, strict=True)}
    return Eligibility(dte=dte, universe=universe, eligible=eligible, has_iv=has_iv,
                       has_gamma=has_gamma, excluded=excluded)
