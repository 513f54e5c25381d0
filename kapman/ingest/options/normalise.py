"""Option-chain snapshot results -> ``options_chains`` rows: pure functions, no I/O.

One call turns one underlying's snapshot results into rows keyed by the run's snapshot time.
The vendor's rough edges are handled here, each counted rather than crashing the symbol:

- ``greeks`` may be absent, ``{}`` or ``null``; ``implied_volatility`` may be absent.  Missing
  values stay NULL, never 0 (a zero delta is a real, different statement).
- ``contract_type: other`` cannot be stored as 'C'/'P' and is dropped (``other``).
- A contract that expired before the snapshot's New York date is dropped (``expired``).
- A contract without a usable strike, expiration, type or symbol is ``malformed``.  The expiration
  is a string ``YYYY-MM-DD`` and nothing else; the strike a number (not a bool) or an ASCII
  decimal string; the symbol the vendor's option ticker (``O:``, an ASCII root of 1 to 6 letters
  or digits such as ``AAPL``, ``SPXW`` or the adjusted ``AAPL1``, the expiration as YYMMDD, C or P,
  the strike in thousandths as 8 digits) whose expiration and type are the contract's own.  Its
  strike is not compared: it has three decimals, the column four.
- So is a contract with a number out of range for its column (``insane``): a sane contract has a
  whole ``shares_per_contract`` in 1..2**31-1, a whole ``volume`` and ``open_interest`` in
  0..2**63-1 (a fractional count is refused, not rounded), prices (bid, ask, last, the day's
  close) in 0..1e8 and an underlying price in (0..1e8] (no price reaches the strike column's
  10**8; a price of 0 is no quote and stored NULL), an implied volatility in 0..1000 (a generous
  cap: real ones exceed 5, 1000 is 100,000 %), a delta in -1..1 and a gamma in 0..10,000 (each with
  1e-6 for a model's rounding), a theta and a vega in -1e6..1e6.  A crossed quote (bid above ask)
  is real and kept.  Only that contract is dropped, named in the samples; the chain is kept.
- A number sent as anything but a JSON number (``"open_interest": "10"``, ``"delta": "0.5"``, a
  bool, an object) is not read as one: a string is not a quantity the vendor stated as such, and
  guessing its format would store what no one sent.  It is stored NULL, as an absent value is, and
  counted per field (``not_numbers``, with the first value seen) for the run's note, so the gap is
  never silent; the contract is kept, its key noted (``unreadable``): a replay of a stored snapshot
  keeps that contract's stored row (``write.write_chain``).  The strike alone may be text (above):
  it is the key.
- A quote or trade time that is not a positive integer of nanoseconds within datetime's range
  (through year 9999) is stored NULL, as an absent one is.
- Freshness is kept (migration 0010): the last quote's and last trade's times, the timeframe
  (REAL-TIME or DELAYED: the quote's, else the trade's) and the day's close.  ``last`` is the last
  trade's price only (NULL without a trade); ``day_close`` keeps the session's close beside it.
- Two contracts on the same (expiration, strike, type), e.g. an adjusted contract beside the
  standard one, collide on the table's key.  Rule: keep the one with ``shares_per_contract ==
  100`` (the standard deliverable every downstream metric assumes); between equals keep the
  lexicographically smallest contract symbol.  A loser with a non-standard deliverable is counted
  as ``adjusted``, any other loser as ``collisions``.  (Adjusted contracts without a standard twin
  are stored; A3 keeps them out of its metrics, see docs/a3_dealer_metrics.md.)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from kapman.clock import ny_date_of

#: options_chains.strike_price is numeric(12,4): four decimals, below 10**8.
STRIKE_QUANTUM = Decimal("0.0001")
STRIKE_LIMIT = Decimal(10) ** 8
STANDARD_SHARES = 100
OPTION_TYPES = {"call": "C", "put": "P"}
#: Malformed examples kept per symbol, for the summary.
SAMPLES = 3

#: Column order of the rows built here (and of the COPY that writes them).
COLUMNS = (
    "time",
    "ticker_id",
    "expiration_date",
    "strike_price",
    "option_type",
    "contract_symbol",
    "shares_per_contract",
    "underlying_price",
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "implied_volatility",
    "delta",
    "gamma",
    "theta",
    "vega",
    "quote_updated_at",
    "trade_updated_at",
    "timeframe",
    "day_close",
)
TYPES = (
    "timestamptz",
    "uuid",
    "date",
    "numeric",
    "text",
    "text",
    "int4",
    "float8",
    "float8",
    "float8",
    "float8",
    "int8",
    "int8",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "timestamptz",
    "timestamptz",
    "text",
    "float8",
)
DROP_REASONS = ("expired", "other", "adjusted", "collisions", "malformed")
#: How the run's summary names each drop reason (after the count).
DROP_LABELS = {
    "expired": "expired before the snapshot's date",
    "other": "of contract_type other",
    "adjusted": "adjusted contracts (deliverable != 100) kept out: a standard contract has the same "
                "expiration, strike and type",
    "collisions": "duplicates of another contract's expiration, strike and type",
    "malformed": "malformed",
}
#: The integer columns' ranges: shares_per_contract is int4, volume and open_interest int8.
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
#: The highest sane price (bid, ask, last, close, underlying): below the strike column's 10**8.
PRICE_MAX = 1e8
#: The highest sane implied volatility: 1000 (100,000 %); real ones exceed 5 on short expiries.
IV_MAX = 1000.0
#: A delta's bound: 1, and a model's rounding past it (1.0000000002) is not a reason to lose a contract.
DELTA_MAX = 1.0 + 1e-6
#: A gamma's bounds (per share, per $1 of the underlying): never negative, but for a model's rounding
#: (as delta's); at most 10,000, a generous cap: gamma times spot is at most 1 / (iv * sqrt(2 pi t)),
#: some hundreds for an at-the-money contract with a minute left.  A3 reads gamma as given.
GAMMA_MIN, GAMMA_MAX = -1e-6, 1e4
#: Theta's and vega's bound either way (per share): far past any real one.  What a run stores, the
#: archive's restore must take back (``kapman.archive.table.PLAUSIBLE`` covers every range here).
THETA_VEGA_MAX = 1e6
#: The lowest sane underlying price: above zero (a stock or index at 0 is no quote, read as absent).
_ABOVE_ZERO = math.ulp(0.0)
#: (column index in a row, field name as the vendor spells it, lowest sane value, highest).
RANGES = (
    (6, "shares_per_contract", 1, INT4_MAX),
    (7, "underlying_asset.price", _ABOVE_ZERO, PRICE_MAX),
    (8, "last_quote.bid", 0.0, PRICE_MAX),
    (9, "last_quote.ask", 0.0, PRICE_MAX),
    (10, "last_trade.price", 0.0, PRICE_MAX),
    (11, "day.volume", 0, INT8_MAX),
    (12, "open_interest", 0, INT8_MAX),
    (13, "implied_volatility", 0.0, IV_MAX),
    (14, "greeks.delta", -DELTA_MAX, DELTA_MAX),
    (15, "greeks.gamma", GAMMA_MIN, GAMMA_MAX),
    (16, "greeks.theta", -THETA_VEGA_MAX, THETA_VEGA_MAX),
    (17, "greeks.vega", -THETA_VEGA_MAX, THETA_VEGA_MAX),
    (21, "day.close", 0.0, PRICE_MAX),
)
#: The counts (shares_per_contract, day.volume, open_interest), which must be whole: ``_int``
#: leaves a fractional float as it is for ``insane`` to refuse.
_WHOLE = (6, 11, 12)
COLUMN_NAMES = {index: name for index, name, _low, _high in RANGES}


def _bound(value: float) -> str:
    return {INT4_MAX: "2**31-1", INT8_MAX: "2**63-1", _ABOVE_ZERO: "above 0"}.get(value, f"{value:g}")


def insane(row: tuple) -> str | None:
    """Why a contract's row cannot be stored as it is (a number out of range for its column), or None."""
    for index in _WHOLE:
        value = row[index]
        if type(value) is float:
            return f"{row[5]}: {COLUMN_NAMES[index]} {value:.6g} is not a whole number"
    for index, name, low, high in RANGES:
        value = row[index]
        if value is not None and not low <= value <= high:
            shown = f"{value:.6g}" if isinstance(value, float) or abs(value) > 10**15 else str(value)
            return f"{row[5]}: {name} {shown} is out of range ({_bound(low)}..{_bound(high)})"
    return None


@dataclass
class NormalisedChain:
    rows: list[tuple] = field(default_factory=list)
    contracts: int = 0
    dropped: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    unpriced: int = 0  # rows without an underlying price (a chain without underlying_asset.price)
    unquoted: int = 0  # rows without bid and ask (a chain without last_quote)
    #: Per field (as the vendor spells it), kept contracts whose value was not a number (stored NULL).
    not_numbers: Counter = field(default_factory=Counter)
    #: Per field, the first such value, as ``_shown`` quotes it.
    not_number_examples: dict[str, str] = field(default_factory=dict)
    #: The keys (expiration, strike, type) of the kept contracts holding such a value.
    unreadable: set[tuple] = field(default_factory=set)

    def count_not_numbers(self, unread: list[tuple[str, Any]]) -> None:
        """Count a kept contract's values that were not numbers (``unread``: (field, value) pairs)."""
        for name, value in unread:
            self.not_numbers[name] += 1
            if name not in self.not_number_examples:
                self.not_number_examples[name] = _shown(value)


class Malformed(ValueError):
    pass


#: What an absent or non-object nested field reads as (never mutated).
_EMPTY: dict = {}


def _obj(value: Any) -> dict:
    """A nested object, or {} for absent / null / not-an-object."""
    return value if isinstance(value, dict) else {}


def _num(value: Any, name: str = "", unread: list[tuple[str, Any]] | None = None) -> float | None:
    """A finite float, or None (absent, null, NaN, or not a number: then (name, value) goes to ``unread``)."""
    kind = type(value)
    if kind is float:  # the common case first: this runs ~15 times per contract
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value)
    if value is not None and unread is not None:
        unread.append((name, value))
    return None


def _int(value: Any, name: str = "", unread: list[tuple[str, Any]] | None = None) -> int | float | None:
    """A whole number as an int; a fractional finite float as it is (``insane`` refuses it where a
    count must be whole); None for anything else (not a number: (name, value) goes to ``unread``)."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        if math.isfinite(value):
            return int(value) if value.is_integer() else value
    elif value is not None and unread is not None:
        unread.append((name, value))
    return None


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The vendor's two timeframes; anything else is stored NULL.
TIMEFRAMES = frozenset({"REAL-TIME", "DELAYED"})


#: Nanoseconds since the epoch beyond which a datetime cannot hold the time (after year 9999).
NS_LIMIT = ((datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _UNIX_EPOCH) // timedelta(microseconds=1)
            + 1) * 1000 - 1


def ns_time(value: Any) -> datetime | None:
    """A vendor timestamp (integer nanoseconds since the epoch) as an aware datetime (to the us);
    None when absent, not a positive integer or beyond datetime's range."""
    if type(value) is not int or not 0 < value <= NS_LIMIT:
        return None
    return _UNIX_EPOCH + timedelta(microseconds=value // 1000)


def freshness(quote: dict, trade: dict, day: dict, unread: list[tuple[str, Any]] | None = None
              ) -> tuple[datetime | None, datetime | None, str | None, float | None]:
    """(quote_updated_at, trade_updated_at, timeframe, day_close) of one contract."""
    timeframe = quote.get("timeframe") or trade.get("timeframe")
    return (ns_time(quote.get("last_updated")), ns_time(trade.get("sip_timestamp")),
            timeframe if isinstance(timeframe, str) and timeframe in TIMEFRAMES else None,
            _num(day.get("close"), "day.close", unread))


#: How much of an unusable value a drop sample quotes.
SHOWN = 48


def _shown(value: Any) -> str:
    """``value``'s repr for a drop sample, cut to SHOWN characters (a vendor's text can be any length)."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


#: A strike given as text: ASCII digits with an optional sign and decimal point (no exponent,
#: no ``_`` separators, no other scripts' digits, which ``Decimal`` would all accept).
_DECIMAL_TEXT = re.compile(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*", re.ASCII)


def strike_of(value: Any) -> Decimal:
    """The strike as numeric(12,4): via ``str`` so 150.1 is 150.1000, not the float's binary tail."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise Malformed("no strike_price")
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise Malformed(f"strike_price {_shown(value)} is not a number")
    try:
        strike = Decimal(str(value).strip()).quantize(STRIKE_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise Malformed(f"strike_price {_shown(value)} is not a number") from None
    if not strike.is_finite() or strike <= 0 or strike >= STRIKE_LIMIT:
        raise Malformed(f"strike_price {_shown(value)} out of range")
    return strike


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _expiration(value: Any) -> date:
    """The expiration: a string YYYY-MM-DD exactly (no other ISO form, no number, nothing after it)."""
    if not value:
        raise Malformed("no expiration_date")
    if type(value) is not str or not _ISO_DATE.fullmatch(value):
        raise Malformed(f"expiration_date {_shown(value)} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Malformed(f"expiration_date {_shown(value)} is not a date") from None


#: The vendor's option ticker: ``O:``, the root, the expiration as YYMMDD, C or P, the strike in
#: thousandths.  The root is the underlying's symbol without punctuation, or another the exchange
#: lists (``SPXW`` for an index's weeklies, ``AAPL1`` for an adjusted contract): not compared.
_OPTION_TICKER = re.compile(r"O:[A-Z0-9]{1,6}([0-9]{6})([CP])[0-9]{8}", re.ASCII)


def ticker_problem(symbol: str, expiration: str, option_type: str) -> str | None:
    """Why ``symbol`` is not the option ticker of a contract of that expiration (YYYY-MM-DD) and
    type (C/P), or None."""
    match = _OPTION_TICKER.fullmatch(symbol)
    if match is None:
        return f"contract ticker {_shown(symbol)} is not an option ticker (O:, root, YYMMDD, C or P, 8-digit strike)"
    if match[1] != expiration[2:4] + expiration[5:7] + expiration[8:10] or match[2] != option_type:
        return f"contract ticker {_shown(symbol)} is not the contract's ({expiration}, {option_type})"
    return None


def underlying_price(result: dict, unread: list[tuple[str, Any]] | None = None) -> float | None:
    """``underlying_asset.price`` for stocks, ``.value`` for indices; a price of 0 is no quote (None):
    it costs the contract its underlying price, not its row, which cannot be fetched again."""
    asset = _obj(result.get("underlying_asset"))
    price = _num(asset.get("price"), "underlying_asset.price", unread)
    price = price if price is not None else _num(asset.get("value"), "underlying_asset.value", unread)
    return None if price == 0.0 else price


def contract_row(
    result: Any, snapshot_time: datetime, ticker_id: UUID, parsed: dict[Any, Any] | None = None,
    unread: list[tuple[str, Any]] | None = None,
) -> tuple | str:
    """The row for one result, or the drop reason 'other' (raises Malformed when unusable or ``insane``).

    ``parsed`` memoises strikes and dates, which repeat across a chain's expirations and types;
    ``unread`` collects the (field, value) of each value stored NULL because it was not a number.
    """
    if not isinstance(result, dict):
        raise Malformed("result is not an object")
    details = _obj(result.get("details"))
    kind = details.get("contract_type")
    if kind == "other":
        return "other"
    option_type = OPTION_TYPES.get(kind) if isinstance(kind, str) else None
    if option_type is None:
        raise Malformed(f"contract_type {_shown(kind)}" if kind else "no contract_type")
    symbol = details.get("ticker")
    if not isinstance(symbol, str) or not symbol.strip():
        raise Malformed("no contract ticker")
    if "\x00" in symbol:
        raise Malformed(f"contract ticker {_shown(symbol)} holds a NUL character")
    parsed = {} if parsed is None else parsed
    raw_expiry, raw_strike = details.get("expiration_date"), details.get("strike_price")
    key_e, key_s = ("e", raw_expiry), ("s", type(raw_strike), raw_strike)
    expiration = parsed.get(key_e) if isinstance(raw_expiry, str) else None
    if expiration is None:
        expiration = parsed[key_e] = _expiration(raw_expiry)
    why = ticker_problem(symbol.strip(), expiration.isoformat(), option_type)
    if why is not None:
        raise Malformed(why)
    strike = parsed.get(key_s) if isinstance(raw_strike, (int, float, str)) else None
    if strike is None:
        strike = parsed[key_s] = strike_of(raw_strike)
    greeks = _obj(result.get("greeks"))
    quote = _obj(result.get("last_quote"))
    trade, day = _obj(result.get("last_trade")), _obj(result.get("day"))
    row = (
        snapshot_time,
        ticker_id,
        expiration,
        strike,
        option_type,
        symbol.strip(),
        _int(details.get("shares_per_contract"), "shares_per_contract", unread),
        underlying_price(result, unread),
        _num(quote.get("bid"), "last_quote.bid", unread),
        _num(quote.get("ask"), "last_quote.ask", unread),
        _num(trade.get("price"), "last_trade.price", unread),
        _int(day.get("volume"), "day.volume", unread),
        _int(result.get("open_interest"), "open_interest", unread),
        _num(result.get("implied_volatility"), "implied_volatility", unread),
        _num(greeks.get("delta"), "greeks.delta", unread),
        _num(greeks.get("gamma"), "greeks.gamma", unread),
        _num(greeks.get("theta"), "greeks.theta", unread),
        _num(greeks.get("vega"), "greeks.vega", unread),
        *freshness(quote, trade, day, unread),
    )
    why = insane(row)
    if why is not None:
        raise Malformed(why)
    return row


def preference(row: tuple) -> tuple[bool, str]:
    """Sort key of the collision rule: standard deliverable first, then the smallest symbol."""
    return (row[6] != STANDARD_SHARES, row[5])


def collision_reason(loser: tuple) -> str:
    """The drop reason of a collision's loser: ``adjusted`` when its deliverable is not 100 shares."""
    return "adjusted" if loser[6] is not None and loser[6] != STANDARD_SHARES else "collisions"


class ChainNormaliser:
    """``normalise_chain`` a page at a time: ``add`` each page's results, then ``finish``.

    A fetch worker normalises each page while its decoded dicts are still warm in the cache and
    drops them before the next page, instead of holding the whole decoded chain.  The result is
    exactly ``normalise_chain`` of the concatenated pages.

    The common contract (an object with a call/put type, a ticker, a string expiration and a
    numeric strike) takes an inlined copy of ``contract_row`` with per-chain caches of parsed
    dates and strikes; anything else goes through ``contract_row`` itself, so rows, drop counts
    and malformed samples are the same either way.
    """

    def __init__(self, snapshot_time: datetime, ticker_id: UUID) -> None:
        self.snapshot_time, self.ticker_id = snapshot_time, ticker_id
        self.today = ny_date_of(snapshot_time)
        self.out = NormalisedChain()
        self._kept: dict[tuple, tuple] = {}
        self._parsed: dict[Any, Any] = {}  # contract_row's memo
        self._expiries: dict[str, date] = {}
        self._yymmdd: dict[str, str] = {}  # each expiration as its tickers spell it
        self._strikes: dict[Any, Decimal] = {}  # int and float strikes of equal value quantise alike

    def add(self, results: list[Any]) -> None:
        out, kept, today = self.out, self._kept, self.today
        snapshot_time, ticker_id = self.snapshot_time, self.ticker_id
        expiries, strikes, types = self._expiries, self._strikes, OPTION_TYPES
        yymmdd, is_ticker = self._yymmdd, _OPTION_TICKER.fullmatch
        num, whole, empty = _num, _int, _EMPTY
        epoch, micros, frames, ns_limit = _UNIX_EPOCH, timedelta, TIMEFRAMES, NS_LIMIT
        unread: list[tuple[str, Any]] = []  # this contract's values that were not numbers
        out.contracts += len(results)
        for result in results:
            row: tuple | None = None
            if type(result) is dict:
                details = result.get("details")
                if type(details) is dict:
                    kind = details.get("contract_type")
                    symbol = details.get("ticker")
                    raw_expiry = details.get("expiration_date")
                    raw_strike = details.get("strike_price")
                    strike_kind = type(raw_strike)
                    if (
                        type(kind) is str
                        and kind in types
                        and type(symbol) is str
                        and type(raw_expiry) is str
                        and (strike_kind is float or strike_kind is int)
                    ):
                        option_type = types[kind]
                        contract_symbol = symbol.strip()
                        expiration = expiries.get(raw_expiry)
                        strike = strikes.get(raw_strike)
                        try:
                            if expiration is None:
                                expiration = expiries[raw_expiry] = _expiration(raw_expiry)
                                yymmdd[raw_expiry] = f"{expiration:%y%m%d}"
                            if strike is None:
                                strike = strikes[raw_strike] = strike_of(raw_strike)
                        except Malformed:
                            contract_symbol = ""  # contract_row says why
                        if contract_symbol:
                            v = details.get("shares_per_contract")
                            shares = v if type(v) is int else whole(v, "shares_per_contract", unread)
                            asset = result.get("underlying_asset")
                            if not isinstance(asset, dict):
                                asset = empty
                            v = asset.get("price")
                            underlying: float | None
                            if type(v) is float and v - v == 0.0:
                                underlying = v
                            else:
                                underlying = num(v, "underlying_asset.price", unread)
                                if underlying is None:
                                    underlying = num(asset.get("value"), "underlying_asset.value", unread)
                            if underlying == 0.0:  # no quote (as ``underlying_price``): not a reason to drop
                                underlying = None
                            quote = result.get("last_quote")
                            if not isinstance(quote, dict):
                                quote = empty
                            v = quote.get("bid")
                            bid = v if type(v) is float and v - v == 0.0 else num(v, "last_quote.bid", unread)
                            v = quote.get("ask")
                            ask = v if type(v) is float and v - v == 0.0 else num(v, "last_quote.ask", unread)
                            trade = result.get("last_trade")
                            if not isinstance(trade, dict):
                                trade = empty
                            v = trade.get("price")
                            last = v if type(v) is float and v - v == 0.0 else num(v, "last_trade.price", unread)
                            day = result.get("day")
                            if not isinstance(day, dict):
                                day = empty
                            v = day.get("volume")
                            volume = v if type(v) is int else whole(v, "day.volume", unread)
                            v = result.get("open_interest")
                            open_interest = v if type(v) is int else whole(v, "open_interest", unread)
                            v = result.get("implied_volatility")
                            iv = v if type(v) is float and v - v == 0.0 else num(v, "implied_volatility", unread)
                            greeks = result.get("greeks")
                            if not isinstance(greeks, dict):
                                greeks = empty
                            v = greeks.get("delta")
                            delta = v if type(v) is float and v - v == 0.0 else num(v, "greeks.delta", unread)
                            v = greeks.get("gamma")
                            gamma = v if type(v) is float and v - v == 0.0 else num(v, "greeks.gamma", unread)
                            v = greeks.get("theta")
                            theta = v if type(v) is float and v - v == 0.0 else num(v, "greeks.theta", unread)
                            v = greeks.get("vega")
                            vega = v if type(v) is float and v - v == 0.0 else num(v, "greeks.vega", unread)
                            row = (
                                snapshot_time,
                                ticker_id,
                                expiration,
                                strike,
                                option_type,
                                contract_symbol,
                                shares,
                                underlying,
                                bid,
                                ask,
                                last,
                                volume,
                                open_interest,
                                iv,
                                delta,
                                gamma,
                                theta,
                                vega,
                                # freshness(), inlined: this runs once per contract
                                epoch + micros(microseconds=qt // 1000) if type(qt := quote.get("last_updated"))
                                is int and 0 < qt <= ns_limit else None,
                                epoch + micros(microseconds=tt // 1000) if type(tt := trade.get("sip_timestamp"))
                                is int and 0 < tt <= ns_limit else None,
                                tf if type(tf := quote.get("timeframe") or trade.get("timeframe")) is str
                                and tf in frames else None,
                                v if type(v := day.get("close")) is float and v - v == 0.0
                                else num(v, "day.close", unread),
                            )
                            # The ranges of ``insane`` and contract_row's ticker rule, inline:
                            # this runs once per contract.
                            if not (
                                (shares is None or type(shares) is int and 0 < shares <= INT4_MAX)
                                and (volume is None or type(volume) is int and 0 <= volume <= INT8_MAX)
                                and (open_interest is None or type(open_interest) is int
                                     and 0 <= open_interest <= INT8_MAX)
                                and (underlying is None or 0.0 < underlying <= PRICE_MAX)
                                and (bid is None or 0.0 <= bid <= PRICE_MAX)
                                and (ask is None or 0.0 <= ask <= PRICE_MAX)
                                and (last is None or 0.0 <= last <= PRICE_MAX)
                                and (iv is None or 0.0 <= iv <= IV_MAX)
                                and (delta is None or -DELTA_MAX <= delta <= DELTA_MAX)
                                and (gamma is None or GAMMA_MIN <= gamma <= GAMMA_MAX)
                                and (theta is None or -THETA_VEGA_MAX <= theta <= THETA_VEGA_MAX)
                                and (vega is None or -THETA_VEGA_MAX <= vega <= THETA_VEGA_MAX)
                                and (row[21] is None or 0.0 <= row[21] <= PRICE_MAX)
                                and contract_symbol[-15:-9] == yymmdd[raw_expiry]
                                and contract_symbol[-9:-8] == option_type
                                and is_ticker(contract_symbol)
                            ):
                                row = None
            if row is None:
                unread.clear()  # contract_row reads the values again
                try:
                    slow = contract_row(result, snapshot_time, ticker_id, self._parsed, unread)
                except Malformed as exc:
                    unread.clear()
                    out.dropped["malformed"] += 1
                    if len(out.samples) < SAMPLES:
                        out.samples.append(str(exc))
                    continue
                if isinstance(slow, str):
                    out.dropped[slow] += 1
                    continue
                row = slow
            if row[2] < today:
                unread.clear()
                out.dropped["expired"] += 1
                continue
            key = row[2:5]
            current = kept.get(key)
            if current is not None:
                loser = row if preference(row) >= preference(current) else current
                out.dropped[collision_reason(loser)] += 1
                if loser is row:
                    unread.clear()
                    continue
                out.unreadable.discard(key)  # the replaced contract's values go with it
            kept[key] = row
            if unread:
                out.count_not_numbers(unread)
                out.unreadable.add(key)
                unread.clear()

    def finish(self) -> NormalisedChain:
        rows = self.out.rows = list(self._kept.values())
        self.out.unpriced = sum(1 for r in rows if r[7] is None)
        self.out.unquoted = sum(1 for r in rows if r[8] is None and r[9] is None)
        return self.out


def normalise_chain(results: list[Any], snapshot_time: datetime, ticker_id: UUID) -> NormalisedChain:
    """Rows for one underlying's snapshot, with every dropped contract counted by reason."""
    normaliser = ChainNormaliser(snapshot_time, ticker_id)
    normaliser.add(results)
    return normaliser.finish()
