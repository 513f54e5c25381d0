"""The realistic profile's reference data: the shapes of the real list, deterministic per seed."""

from __future__ import annotations

import gzip
import re
from datetime import date

import pytest

from kapman.sandbox.market import Market
from kapman.sandbox.profiles import REALISTIC, TIDY, profile_named
from kapman.sandbox.universe import build_universe

END = date(2025, 12, 19)
WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def real() -> Market:
    return Market(seed=42, n_tickers=260, days=800, profile=REALISTIC)


def by_symbol(market: Market) -> dict[str, dict]:
    return {r["ticker"]: r for r in market.tickers}


def test_class_suffix_tickers_beside_their_namesakes(real: Market) -> None:
    refs = by_symbol(real)
    assert (refs["AAP"]["type"], refs["AAp"]["type"]) == ("CS", "PFD")
    assert (refs["TPC"]["type"], refs["TpC"]["type"]) == ("CS", "PFD")
    assert refs["AAp"]["name"] == "Alcoa Corporation $3.75 Cumulative Preferred Stock"
    assert refs["TpC"]["name"] == "AT&T Inc. 4.750% Depositary Shares, Series C"
    # Both rows in one day file, with prices of their own.
    lines = gzip.decompress(real.flat_file_csv_gz(END)).decode().splitlines()
    rows = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    assert {"AAP", "AAp", "TPC", "TpC"} <= set(rows)
    assert rows["AAP"][3] != rows["AAp"][3] and rows["TPC"][3] != rows["TpC"][3]
    closes = real.bars(END).set_index("ticker").close
    assert 15 < closes["TpC"] < 25 and closes["AAP"] > 40


def test_etv_and_ets_types(real: Market) -> None:
    refs = by_symbol(real)
    assert refs["GLD"]["type"] == refs["SLV"]["type"] == "ETV"
    assert refs["NVDL"]["type"] == refs["TSLL"]["type"] == "ETS"
    assert refs["SPY"]["type"] == "ETF"
    assert real.option_chain("GLD", real.now) and real.option_chain("NVDL", real.now)
    assert by_symbol(Market(seed=42, n_tickers=260, days=10))["GLD"]["type"] == "ETF"    # tidy


def test_records_without_cik_or_figis_and_whole_second_timestamps(real: Market) -> None:
    refs = list(real.tickers)
    no_cik = [r for r in refs if "cik" not in r]
    no_figi = [r for r in refs if "composite_figi" not in r]
    assert 0.05 * len(refs) < len(no_cik) < 0.4 * len(refs) and 0.05 * len(refs) < len(no_figi) < 0.4 * len(refs)
    assert all("share_class_figi" not in r for r in no_figi)
    pfd = by_symbol(real)["AAp"]
    assert "cik" not in pfd and "composite_figi" not in pfd and "share_class_figi" not in pfd
    assert all(WHOLE_SECONDS.fullmatch(r["last_updated_utc"]) for r in refs)
    assert all(WHOLE_SECONDS.fullmatch(r["delisted_utc"]) for r in refs if "delisted_utc" in r)
    tidy = Market(seed=42, n_tickers=260, days=10).tickers
    assert all(len(r["cik"]) == 10 and r["last_updated_utc"].endswith("000Z") for r in tidy)


def test_delisted_tickers_have_bars_until_their_delisting(real: Market) -> None:
    delisted = [lst for lst in real.listings if lst.delisted and lst.delisted > real.trading_days[5]]
    assert delisted
    frame = real.bars_between(real.trading_days[0], END)
    for listing in delisted:
        days = frame.loc[frame.ticker == listing.symbol, "date"]
        assert days.max() < listing.delisted and (listing.delisted - days.max()).days <= 5
        record = by_symbol(real)[listing.symbol]
        assert record["active"] is False and record["delisted_utc"] == f"{listing.delisted}T00:00:00Z"


def test_deterministic_and_tidy_unchanged() -> None:
    a = build_universe(7, 250, END, REALISTIC)
    assert a == build_universe(7, 250, END, REALISTIC) and a != build_universe(8, 250, END, REALISTIC)
    records, listings = build_universe(7, 250, END, REALISTIC)
    assert len(listings) == len({lst.symbol for lst in listings}) == 250
    assert build_universe(7, 250, END) == build_universe(7, 250, END, TIDY)


def test_profile_by_name_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert profile_named("realistic") is REALISTIC and profile_named(None) is TIDY
    monkeypatch.setenv("KAPMAN_SANDBOX_PROFILE", "realistic")
    assert profile_named() is REALISTIC


def test_the_official_client_reads_the_realistic_reference_list() -> None:
    import massive

    from kapman.sandbox.rest import SandboxRestServer

    market = Market(seed=3, n_tickers=400, days=10, profile=REALISTIC)
    with SandboxRestServer(market, api_key="k") as server:
        api = massive.RESTClient(api_key="k", base=server.base_url, retries=0)
        listed = {t.ticker: t for t in api.list_tickers(market="stocks", limit=1000)}
        delisted = {t.ticker: t for t in api.list_tickers(market="stocks", active=False, limit=1000)}
    refs = by_symbol(market)
    assert {"AAP", "AAp", "TPC", "TpC", "GLD", "NVDL"} <= set(listed)
    assert listed["AAp"].type == "PFD" and listed["AAp"].cik is None and listed["AAp"].composite_figi is None
    assert listed["GLD"].type == "ETV" and listed["NVDL"].type == "ETS"
    assert listed["AAPL"].last_updated_utc == refs["AAPL"]["last_updated_utc"]
    assert delisted and all(t.active is False and t.delisted_utc for t in delisted.values())
    assert set(delisted) == {s for s, r in refs.items() if not r["active"]}
