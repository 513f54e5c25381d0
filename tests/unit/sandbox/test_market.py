from __future__ import annotations

import gzip
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from vollib.black_scholes.greeks.analytical import delta, gamma, theta, vega

from kapman.calendar import is_trading_day
from kapman.sandbox import flatfiles
from kapman.sandbox.blackscholes import RISK_FREE_RATE
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror
from kapman.sandbox.options import year_fraction

END = date(2025, 12, 19)
WATCHLIST = Path(__file__).resolve().parents[3] / "data" / "watchlists" / "mvp.txt"


def _sane(df) -> np.ndarray:
    lo, hi = np.minimum(df.open, df.close), np.maximum(df.open, df.close)
    return ((df.low <= lo) & (hi <= df.high) & (df.volume >= 0)).to_numpy()


def test_same_seed_same_bytes_different_seed_differs():
    a, b, c = (
        Market(seed=7, n_tickers=250, days=60),
        Market(seed=7, n_tickers=250, days=60),
        Market(seed=8, n_tickers=250, days=60),
    )
    assert a.flat_file_csv_gz(END) == b.flat_file_csv_gz(END) != c.flat_file_csv_gz(END)
    assert a.tickers == b.tickers and a.tickers != c.tickers
    assert a.option_chain("AAPL", a.now) == b.option_chain("AAPL", b.now) != c.option_chain("AAPL", c.now)


def test_bars_do_not_depend_on_range_or_universe_size(market: Market):
    short = Market(seed=42, n_tickers=200, days=40)
    day = short.trading_days[5]
    full = market.bars(day).set_index("ticker")
    part = short.bars(day).set_index("ticker")
    assert full.loc[part.index].equals(part)
    assert market.bars_between(day, day).drop(columns="date").equals(market.bars(day))


def test_universe_shape(market: Market):
    tickers = [r["ticker"] for r in market.tickers]
    assert market.symbols[:4] == ["AAPL", "MSFT", "NVDA", "ORCL"]
    assert len(market.symbols) == len(set(market.symbols)) == 400
    dupes = {t for t in tickers if tickers.count(t) > 1}
    assert len(dupes) == 1
    pair = [r for r in market.tickers if r["ticker"] in dupes]
    assert pair[0]["cik"] != pair[1]["cik"] and pair[0]["last_updated_utc"] != pair[1]["last_updated_utc"]
    inactive = [r for r in market.tickers if not r["active"]]
    assert inactive and all("delisted_utc" in r for r in inactive)
    assert all(len(r["cik"]) == 10 and r["currency_name"] == "usd" for r in market.tickers)
    synthetic = market.symbols[len(market.symbols) - 100 :]
    assert all(s.isalpha() and s.isupper() and 1 <= len(s) <= 5 for s in synthetic)
    assert {r["type"] for r in market.tickers} >= {"CS", "ETF", "ADRC", "WARRANT"}


@pytest.mark.parametrize("seed", [1, 42, 2024])
def test_watchlist_symbols_exist_and_are_active(seed: int):
    symbols = [
        line.strip()
        for line in WATCHLIST.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert 140 <= len(symbols) <= 160
    m = Market(seed=seed, n_tickers=600, days=10)
    active = {r["ticker"] for r in m.tickers if r["active"]}
    assert set(symbols) <= active


def test_calendar_and_sanity(market: Market):
    assert market.trading_days[-1] == END and all(is_trading_day(d) for d in market.trading_days)
    assert date(2025, 12, 25) not in market.trading_days and date(2025, 12, 20) not in market.trading_days
    with pytest.raises(ValueError):
        market.flat_file_csv_gz(date(2025, 11, 27))  # Thanksgiving: no file
    assert market.bars(date(2025, 12, 20)).empty and market.grouped_daily(date(2025, 7, 4)) == []
    frame = market.bars_between(market.trading_days[0], END)
    assert _sane(frame).all() and (frame.vwap.between(frame.low, frame.high)).all()
    assert (frame.volume % 1 != 0).any(), "some tickers report fractional volume"
    per_day = frame.groupby("date").size()
    assert per_day.min() < len(market.symbols), "halts and delistings leave gaps"


def test_split_is_unadjusted_in_files_and_adjusted_in_grouped(market: Market):
    nvda = market.bars_between(market.trading_days[0], END).query("ticker == 'NVDA'").set_index("date")
    ratio = (nvda.close.shift(1) / nvda.open).dropna()
    split_day = ratio.idxmax()
    assert 8 < ratio.max() < 12.5
    before = [d for d in market.trading_days if d < split_day][-1]
    grouped = {r["T"]: r for r in market.grouped_daily(before)}["NVDA"]
    raw = {r["T"]: r for r in market.grouped_daily(before, adjusted=False)}["NVDA"]
    assert raw["c"] == pytest.approx(grouped["c"] * 10, rel=1e-3)


def test_flat_file_layout_and_bad_rows():
    clean = Market(seed=3, n_tickers=220, days=30)
    bad = Market(seed=3, n_tickers=220, days=30, bad_rows=True)
    assert clean.flat_file_key(END) == "us_stocks_sip/day_aggs_v1/2025/12/2025-12-19.csv.gz"
    lines = gzip.decompress(clean.flat_file_csv_gz(END)).decode().splitlines()
    assert lines[0] == "ticker,volume,open,close,high,low,window_start,transactions"
    assert lines[1].split(",")[6] == str(flatfiles.window_start_ns(END)) == "1766120400000000000"
    bad_lines = gzip.decompress(bad.flat_file_csv_gz(END)).decode().splitlines()[1:]
    known, malformed, inverted, negative, unknown = set(bad.symbols), 0, 0, 0, 0
    for line in bad_lines:
        fields = line.split(",")
        try:
            t, (v, _, _, h, lo) = fields[0], map(float, fields[1:6])
        except ValueError:
            malformed += 1
            continue
        inverted += h < lo
        negative += v < 0
        unknown += t not in known
    assert (malformed, inverted, negative, unknown) == (2, 1, 1, 2)
    assert len(bad_lines) == len(lines) - 1 + 4


def test_write_mirror(tmp_path: Path):
    m = Market(seed=5, n_tickers=20, days=10)
    paths = write_mirror(m, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [m.flat_file_key(d) for d in m.trading_days]
    assert paths[-1].read_bytes() == m.flat_file_csv_gz(m.trading_days[-1])


def test_chain_shape_and_quirks(market: Market):
    chain = market.option_chain("AAPL", market.now)
    assert len(chain) > 1000
    spot = market.spot("AAPL", market.now)
    assert spot == float(market.bars(END).set_index("ticker").loc["AAPL", "close"])
    types = {r["details"]["contract_type"] for r in chain}
    assert types == {"call", "put", "other"}
    adjusted = [r for r in chain if r["details"]["shares_per_contract"] != 100]
    assert len(adjusted) == 1 and adjusted[0]["details"]["ticker"].startswith("O:AAPL1")
    d = adjusted[0]["details"]
    twins = [
        r
        for r in chain
        if r is not adjusted[0]
        and (r["details"]["expiration_date"], r["details"]["strike_price"], r["details"]["contract_type"])
        == (d["expiration_date"], d["strike_price"], "call")
    ]
    assert len(twins) == 1
    assert any(r.get("greeks") == {} for r in chain) and any("greeks" not in r for r in chain)
    expiries = sorted({date.fromisoformat(r["details"]["expiration_date"]) for r in chain})
    assert expiries[0] > END and (expiries[-1] - END).days > 300
    assert all(r["underlying_asset"]["price"] == spot for r in chain)
    assert all(r["last_quote"]["bid"] <= r["last_quote"]["ask"] for r in chain)
    sized = Market(seed=42, n_tickers=200, contracts_per_chain=2000, days=20)
    assert 1950 <= len(sized.option_chain("MSFT", sized.now)) <= 2300
    assert 150 <= len(market.option_chain(market.symbols[-1], market.now)) <= 400 or market.listings[
        -1
    ].type not in ("CS", "ETF", "ADRC", "ETN")


def test_greeks_match_vollib(market: Market):
    as_of = datetime(2025, 12, 18, 18, 30, tzinfo=UTC)  # mid-session
    checked = 0
    for r in market.option_chain("SPY", as_of):
        g, d = r.get("greeks"), r["details"]
        if not g or d["contract_type"] == "other":
            continue
        flag = d["contract_type"][0]
        args = (
            flag,
            r["underlying_asset"]["price"],
            d["strike_price"],
            year_fraction(as_of, date.fromisoformat(d["expiration_date"])),
            RISK_FREE_RATE,
            r["implied_volatility"],
        )
        for name, fn in (("delta", delta), ("gamma", gamma), ("theta", theta), ("vega", vega)):
            assert g[name] == pytest.approx(fn(*args), abs=1e-8), (name, d["ticker"])
        assert (g["gamma"] > 0) and (g["delta"] < 0) == (flag == "p")
        checked += 1
    assert checked > 500


def test_full_market_year_timing(capsys):
    started = time.perf_counter()
    m = Market(seed=1, n_tickers=11_000, days=365)
    frame = m.bars_between(m.trading_days[0], m.trading_days[-1])
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nfull-market year: {len(m.symbols)} tickers x {len(m.trading_days)} days = "
            f"{len(frame):,} bars in {elapsed:.2f}s"
        )
    assert _sane(frame).all()
