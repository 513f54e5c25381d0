"""The synthetic market: universe, calendar, daily bars, flat files and option chains from a seed."""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from threading import Lock

import numpy as np
import pandas as pd

from kapman import calendar
from kapman.clock import NEW_YORK, close_of, ny_date_of, session_close
from kapman.sandbox import flatfiles, indices, options
from kapman.sandbox.bars import TickerParams, bars_block, log_closes, symbol_key, uniform
from kapman.sandbox.profiles import TIDY, Profile
from kapman.sandbox.universe import BIG_NAMES, build_universe

log = logging.getLogger(__name__)

DEFAULT_END_DATE = date(2025, 12, 19)
#: Calendar days of history: covers a 730-day base load with room to spare.
DEFAULT_DAYS = 800
#: NVDA's 10-for-1 split, executed 560 days before the end date (2024-06-07 for the default end,
#: as it was for real): (symbol, days before the end date, split_from, split_to).
SPLIT = ("NVDA", 560, 1, 10)
#: A 1-for-10 reverse split, the kind small caps make to stay listed, about nine months before the
#: end date: on the first active synthetic common stock (universes of real names only have none).
REVERSE_SPLIT_DAYS_BEFORE_END, REVERSE_SPLIT_FROM, REVERSE_SPLIT_TO = 270, 10, 1
#: Security types with listed options (commodity trusts such as GLD and single-security ETFs too).
OPTIONABLE = frozenset({"CS", "ETF", "ETV", "ETS", "ADRC", "ETN"})
#: Default contracts per chain: the deepest names, other real names, synthetic names.
CHAIN_SIZES = (1500, 400, 250)
#: Share of underlyings whose chain carries an adjusted and an "other" contract (always the first).
QUIRKY_CHAIN_SHARE = 0.25
_SESSION_OPEN = time(9, 30)
_CHAIN_CACHE = 64

_BASE_STREAM = 0x1000  # per-ticker constants: hash streams evaluated at ordinal 0


class Market:
    """A deterministic market; every output is a pure function of the constructor arguments."""

    def __init__(
        self,
        seed: int = 42,
        n_tickers: int = 600,
        end_date: date = DEFAULT_END_DATE,
        days: int = DEFAULT_DAYS,
        contracts_per_chain: int | None = None,
        bad_rows: bool = False,
        profile: Profile = TIDY,
        duplicate_split: bool = False,
    ) -> None:
        if n_tickers < 1 or days < 1:
            raise ValueError("n_tickers and days must be positive")
        self.seed, self.n_tickers, self.days = seed, n_tickers, days
        self.end_date, self.start_date = end_date, end_date - timedelta(days=days)
        self.contracts_per_chain, self.bad_rows = contracts_per_chain, bad_rows
        self.profile = profile
        #: Also list the last split a second time, five sessions before it executed (as the vendor did).
        self.duplicate_split = duplicate_split
        self.trading_days: list[date] = list(calendar.trading_days(self.start_date, end_date))
        if not self.trading_days:
            raise ValueError(f"no trading day between {self.start_date} and {end_date}")
        self.tickers, self.listings = build_universe(seed, n_tickers, end_date, profile)
        self.symbols = [listing.symbol for listing in self.listings]
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._day_index = {d: i for i, d in enumerate(self.trading_days)}
        self.splits = self._splits()
        self.params = self._params()
        self._chains: OrderedDict[tuple[str, datetime], list[dict]] = OrderedDict()
        self._chains_lock = Lock()  # the REST server asks from several threads

    def __repr__(self) -> str:
        return (
            f"Market(seed={self.seed}, n_tickers={self.n_tickers}, end_date={self.end_date}, "
            f"days={self.days}, profile={self.profile.name})"
        )

    @property
    def now(self) -> datetime:
        """The market clock: the close of the last trading day, in UTC."""
        return close_of(self.trading_days[-1])

    def _params(self) -> TickerParams:
        keys = np.array([symbol_key(s) for s in self.symbols], dtype=np.uint64)
        u = [uniform(self.seed, _BASE_STREAM + k, keys, np.zeros(1, dtype=np.int64))[0] for k in range(6)]
        kinds = np.array([listing.type for listing in self.listings])
        real = np.array([listing.real for listing in self.listings])
        vol = np.select(
            [
                np.isin(kinds, ["ETF", "ETV"]),
                np.isin(kinds, ["ETN", "ETS"]),
                np.isin(kinds, ["WARRANT", "RIGHT"]),
                kinds == "PFD",
                kinds == "UNIT",
                np.isin(kinds, ["ADRC", "ADRP"]),
            ],
            [
                0.14 + 0.16 * u[0],
                0.5 + 0.3 * u[0],
                0.9 + 0.6 * u[0],
                0.08 + 0.05 * u[0],
                0.04 + 0.02 * u[0],
                0.28 + 0.3 * u[0],
            ],
            default=np.where(real, 0.18 + 0.22 * u[0], 0.30 + 0.50 * u[0]),
        )
        beta = np.where(np.isin(kinds, ["PFD", "UNIT"]), 0.1, 0.5 + 1.0 * u[1])
        volume = np.exp(
            np.where(real, np.log(2e7) + 0.8 * (u[2] - 0.5) * 3, np.log(3e5) + 1.3 * (u[2] - 0.5) * 3)
        )
        synthetic = ~real
        first_synthetic = np.arange(len(keys)) == (np.argmax(synthetic) if synthetic.any() else -1)
        fractional = synthetic & ((u[3] < 0.02) | first_synthetic)
        last = np.array([(lst.delisted.toordinal() - 1) if lst.delisted else 10**9 for lst in self.listings])
        split_ordinal = np.zeros(len(keys), dtype=np.int64)
        split_ratio = np.ones(len(keys))
        for split in self.splits:
            j = self._index[split["ticker"]]
            split_ordinal[j] = date.fromisoformat(split["execution_date"]).toordinal()
            split_ratio[j] = split["split_to"] / split["split_from"]
        return TickerParams(
            # Jitter the listed price by a few percent so the last close is not a round number.
            keys=keys,
            end_price=np.array([lst.price for lst in self.listings]) * (0.97 + 0.06 * u[5]),
            vol=vol,
            beta=beta,
            volume=volume,
            trade_size=60 + 140 * u[4],
            fractional=fractional,
            halts=synthetic,
            last_ordinal=last,
            split_ordinal=split_ordinal,
            split_ratio=split_ratio,
        )

    def _splits(self) -> list[dict]:
        """``/v3/reference/splits`` results of this market, oldest first (at most one per ticker).

        The execution date is the first session at the new price: bars before it are unadjusted.
        Like the real API, the list goes back before the market's first bar (those splits adjust
        nothing here: every bar is already at the new price).
        """
        def on_or_after(day: date) -> date:
            while not calendar.is_trading_day(day):
                day += timedelta(days=1)
            return day

        plan = []
        symbol, days_before, split_from, split_to = SPLIT
        if symbol in self._index:
            plan.append((symbol, days_before, split_from, split_to))
        small = next((lst.symbol for lst in self.listings if not lst.real and lst.type == "CS"
                      and lst.delisted is None), None)
        if small is not None:
            plan.append((small, REVERSE_SPLIT_DAYS_BEFORE_END, REVERSE_SPLIT_FROM, REVERSE_SPLIT_TO))
        out = []
        for symbol, days_before, split_from, split_to in plan:
            day = on_or_after(self.end_date - timedelta(days=days_before))
            if day > self.end_date:
                continue
            digest = hashlib.sha256(f"{self.seed}:{symbol}:{day}".encode()).hexdigest()
            out.append({"execution_date": day.isoformat(), "id": "E" + digest[:63], "split_from": split_from,
                        "split_to": split_to, "ticker": symbol})
        if self.duplicate_split and out:   # the vendor's SHOP 1-for-10 on 2022-06-22 and on 2022-06-29
            twin = out[-1]
            day = date.fromisoformat(twin["execution_date"])
            early = calendar.previous_trading_day(day)
            for _ in range(4):
                early = calendar.previous_trading_day(early)
            out.append({**twin, "execution_date": early.isoformat(), "id": "D" + twin["id"][1:]})
        return sorted(out, key=lambda r: (r["execution_date"], r["ticker"]))

    @cached_property
    def _log_close(self) -> np.ndarray:
        ordinals = np.array([d.toordinal() for d in self.trading_days])
        return log_closes(self.seed, self.params, ordinals)

    def _require_day(self, day: date) -> int:
        if day not in self._day_index:
            raise ValueError(
                f"{day} is not a trading day of this market ({self.trading_days[0]}..{self.trading_days[-1]})"
            )
        return self._day_index[day]

    def _block(self, first: int, last: int) -> dict[str, np.ndarray]:
        ordinals = np.array([d.toordinal() for d in self.trading_days[first : last + 1]])
        return bars_block(self.seed, self.params, ordinals, self._log_close[first : last + 1])

    def bars(self, day: date) -> pd.DataFrame:
        """Unadjusted bars of one trading day (no rows on other days), in universe order."""
        if day not in self._day_index:
            return pd.DataFrame(
                columns=["ticker", "open", "high", "low", "close", "volume", "vwap", "transactions"]
            )
        return self.bars_between(day, day).drop(columns="date")

    def bars_between(self, first: date, last: date) -> pd.DataFrame:
        """Bars of every trading day in [first, last] as one long frame with a ``date`` column."""
        lo = bisect.bisect_left(self.trading_days, first)
        hi = bisect.bisect_right(self.trading_days, last) - 1
        if hi < lo:
            return pd.DataFrame(
                columns=["date", "ticker", "open", "high", "low", "close", "volume", "vwap", "transactions"]
            )
        block = self._block(lo, hi)
        rows, cols = np.nonzero(block["present"])
        frame = {
            "date": np.array(self.trading_days[lo : hi + 1], dtype=object)[rows],
            "ticker": np.array(self.symbols, dtype=object)[cols],
        }
        for name in ("open", "high", "low", "close", "volume", "vwap", "transactions"):
            frame[name] = block[name][rows, cols]
        return pd.DataFrame(frame)

    def flat_file_key(self, day: date) -> str:
        return flatfiles.key(day)

    def flat_file_csv_gz(self, day: date, mtime: int = 0) -> bytes:
        """The day's flat file, byte-for-byte deterministic (bad rows only when asked)."""
        self._require_day(day)
        bars = self.bars(day)
        rows = flatfiles.render_rows(bars, day)
        if self.bad_rows:
            rng = options.rng_for(self.seed, "bad-rows", day)
            rows = flatfiles.corrupt(bars, rows, day, rng, set(self.symbols))
        return flatfiles.gzip_csv(rows, mtime=mtime)

    def preliminary_bars(self, day: date) -> pd.DataFrame:
        """The day's bars as first published at the close, before the next morning's correction.

        The vendor may republish a file (final by about 11:00 New York the next day).  Here the
        preliminary file differs from the final one (``bars``) in two ways: the first symbol's close
        is different (it is corrected to the final value), and a ticker with no final bar that day
        (halted or delisted) has a stale row, its previous bar, which the correction removes.
        """
        final = self.bars(day)
        i = self._require_day(day)
        prelim = final.copy()
        if len(prelim):
            row = prelim.index[0]
            high, low, close = prelim.at[row, "high"], prelim.at[row, "low"], prelim.at[row, "close"]
            prelim.at[row, "close"] = high if close != high else low
        if i > 0:
            before = self.bars(self.trading_days[i - 1])
            stale = before[~before["ticker"].isin(set(final["ticker"]))]
            prelim = pd.concat([prelim, stale.head(1)], ignore_index=True)
        return prelim

    def preliminary_flat_file_csv_gz(self, day: date) -> bytes:
        """The preliminary version of the day's file (see ``preliminary_bars``): another ETag."""
        return flatfiles.gzip_csv(flatfiles.render_rows(self.preliminary_bars(day), day), mtime=1)

    def grouped_daily(self, day: date, adjusted: bool = True) -> list[dict]:
        """``/v2/aggs/grouped`` results; ``adjusted`` undoes the split like the API's default."""
        if day not in self._day_index:
            return []
        i = self._day_index[day]
        block = self._block(i, i)
        factor = block["split_factor"][0] if adjusted else np.ones(len(self.symbols))
        t_ms = int(close_of(day).timestamp() * 1000)
        out = []
        for j in np.nonzero(block["present"][0])[0]:
            f = float(factor[j])
            out.append(
                {
                    "T": self.symbols[j],
                    "v": float(block["volume"][0, j]) * f,
                    "vw": round(float(block["vwap"][0, j]) / f, 4),
                    "o": round(float(block["open"][0, j]) / f, 4),
                    "c": round(float(block["close"][0, j]) / f, 4),
                    "h": round(float(block["high"][0, j]) / f, 4),
                    "l": round(float(block["low"][0, j]) / f, 4),
                    "t": t_ms,
                    "n": int(block["transactions"][0, j]),
                }
            )
        return out

    def _reverse_splits_listed(self, underlying: str, as_of: datetime) -> list[dict]:
        """Reverse splits of ``underlying`` executed within the year before ``as_of``: contracts
        listed before them are still trading, adjusted."""
        today = ny_date_of(as_of)
        found = [s for s in self.splits if s["ticker"] == underlying and s["split_from"] > s["split_to"]
                 and today - timedelta(days=365) < date.fromisoformat(s["execution_date"]) <= today]
        return found[-1:]   # one split, even when the vendor lists it twice

    def index_records(self) -> list[dict]:
        """The reference records of the indices (``market=indices``): I:SPX, I:NDX, I:RUT, I:VIX."""
        return indices.reference_records(f"{self.end_date.isoformat()}T00:00:00Z")

    def spot(self, underlying: str, as_of: datetime) -> float:
        """The underlying's (unadjusted) price at an instant: the last close, or during the
        session a straight line from the open to the close."""
        j = self._index[underlying]
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        day = ny_date_of(as_of)
        i = bisect.bisect_right(self.trading_days, day) - 1
        if i < 0:
            raise ValueError(f"{as_of} is before the market's history ({self.trading_days[0]})")
        block = self._block(i, i)
        session_day = self.trading_days[i]
        opens = datetime.combine(session_day, _SESSION_OPEN, tzinfo=NEW_YORK)
        if session_day == day and as_of < session_close(session_day):
            if as_of < opens:
                if i == 0:
                    return float(block["open"][0, j])
                return float(self._block(i - 1, i - 1)["close"][0, j])
            frac = (as_of - opens) / (session_close(session_day) - opens)
            o, c = float(block["open"][0, j]), float(block["close"][0, j])
            return round(o + (c - o) * frac, 4)
        return float(block["close"][0, j])

    def chain_size(self, underlying: str) -> int:
        if self.contracts_per_chain is not None:
            return self.contracts_per_chain
        listing = self.listings[self._index[underlying]]
        big, real, synthetic = CHAIN_SIZES
        return big if underlying in BIG_NAMES else real if listing.real else synthetic

    def option_chain(self, underlying: str, as_of: datetime) -> list[dict]:
        """Snapshot results for every contract of ``underlying`` as of an instant ([] if none)."""
        j = self._index.get(underlying)
        as_of = (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)).astimezone(UTC)
        if underlying in indices.INDICES:
            with self._chains_lock:
                if (underlying, as_of) not in self._chains:
                    self._chains[(underlying, as_of)] = indices.chain(self.seed, underlying, as_of, self.profile)
                return self._chains[(underlying, as_of)]
        if j is None or self.listings[j].type not in OPTIONABLE or self.listings[j].delisted:
            return []
        cache_key = (underlying, as_of)
        with self._chains_lock:
            if cache_key in self._chains:
                self._chains.move_to_end(cache_key)
                return self._chains[cache_key]
        quirky = (
            j == 0
            or float(
                uniform(
                    self.seed, _BASE_STREAM + 99, self.params.keys[j : j + 1], np.zeros(1, dtype=np.int64)
                )[0, 0]
            )
            < QUIRKY_CHAIN_SHARE
        )
        spot = self.spot(underlying, as_of)
        chain = options.option_chain(
            self.seed,
            underlying,
            spot,
            float(self.params.vol[j]),
            as_of,
            self.chain_size(underlying),
            quirks=quirky,
            profile=self.profile,
        )
        for split in self._reverse_splits_listed(underlying, as_of):
            chain = chain + options.adjusted_after_split(chain, underlying.replace(".", ""), spot,
                                                         split["split_from"], split["split_to"])
        with self._chains_lock:
            self._chains[cache_key] = chain
            if len(self._chains) > _CHAIN_CACHE:
                self._chains.popitem(last=False)
        return chain
