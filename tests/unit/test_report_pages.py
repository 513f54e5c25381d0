"""Report pages from in-memory data: key values, offline and deterministic HTML, coverage gaps."""

from __future__ import annotations

import re
from datetime import date

from kapman.calendar import trading_days
from kapman.report import symbol, warehouse
from kapman.report.data import Bars, History, SymbolDay
from kapman.report.keyvalues import key_values, terminal_table, usd
from kapman.report.watchlist import report_name

DAYS = list(trading_days(date(2025, 11, 20), date(2025, 12, 19)))


def symbol_day(status: str = "FULL") -> SymbolDay:
    n = len(DAYS)
    close = [100.0 + i for i in range(n)]
    bars = Bars(DAYS, [c - 0.5 for c in close], [c + 1 for c in close], [c - 1 for c in close], close,
                [1e6 + 1e4 * i for i in range(n)])
    indicators = {d: {"sma_20": 101.0 + i, "sma_50": None, "sma_200": None, "bb_upper": 110.0 + i,
                      "bb_middle": 101.0 + i, "bb_lower": 92.0 + i, "rsi": 55.0, "macd": 0.5, "macd_signal": 0.4,
                      "macd_diff": 0.1} for i, d in enumerate(DAYS[-5:])}
    technical = {"momentum": {"rsi": {"rsi": 55.0}}, "trend": {"sma": {"sma_20": 105.0, "sma_50": None},
                                                              "macd": {"macd": 0.5, "macd_signal": 0.4}}}
    dealer = {"status": status, "status_reason": None if status == "FULL" else "no_snapshot",
              "spot": close[-1], "gex_net": -48_700_000.0, "gex_gross": 962_250_000.0, "position": "neutral",
              "gamma_flip": 127.89, "gamma_flip_distance_pct": 2.76, "call_wall": 130.0, "put_wall": 120.0,
              "max_pain": 125.0, "max_pain_expiration": "2025-12-26", "put_call_oi_ratio": 1.02, "atm_iv": 0.221,
              "dex_net": 1.2e10, "gex_by_dte": {"0-7": {"net": 3e7, "gross": 1.3e8, "contracts": 40},
                                                "8-30": {"net": -9e7, "gross": 4.3e8, "contracts": 60}},
              "strike_profile": {"strikes": [115.0, 120.0, 125.0, 130.0], "gex": [-1e6, -7e7, 2e6, 4.6e7]}}
    history = History(DAYS[-3:], close[-3:], [1.9e8, 2.6e7, -4.87e7], [120.0, 124.0, 127.89])
    return SymbolDay("TEST", DAYS[-1], bars, indicators, technical, {"rvol": 1.4, "hv": 0.234}, dealer, history)


def test_usd_scales_dealer_exposures() -> None:
    assert [usd(v) for v in (-48_700_000, 962_250_000, 1.2e10, 512.3, None, float("nan"))] == \
        ["-$48.70M", "$962.25M", "$12.00B", "$512.30", "-", "-"]


def test_key_values_format_levels_with_their_distance_from_spot() -> None:
    values = {kv.label: kv.text for kv in key_values(symbol_day())}
    assert values["close"] == "120.00" and values["change"] == "+0.84%"
    assert values["gamma flip"] == "127.89 (+2.76%)"
    assert values["call wall"] == "130.00 (+8.33%)" and values["put wall"] == "120.00 (+0.00%)"
    assert values["max pain"] == "125.00 (+4.17%) exp 2025-12-26"
    assert values["HV 20d"] == "23.4%" and values["ATM IV"] == "22.1%" and values["SMA 50"] == "-"
    table = terminal_table(symbol_day())
    assert table.splitlines()[0] == "TEST 2025-12-19" and "    net GEX          -$48.70M" in table


def test_symbol_page_is_offline_and_byte_identical_across_renders() -> None:
    first, second = symbol.render(symbol_day()), symbol.render(symbol_day())
    assert first == second
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", first), "the page must not load anything"
    for div in ("price", "gex-strike", "gex-expiry", "history"):
        assert f'id="{div}"' in first
    assert "Plotly.newPlot" in first and first.count("<script>") >= 5


def test_a_limited_or_invalid_day_says_so_on_the_page() -> None:
    page = symbol.render(symbol_day("INVALID"))
    assert "A3 status INVALID: no_snapshot" in page


def test_report_file_names_keep_share_classes_readable() -> None:
    assert report_name("BRK.B") == "BRK.B.html" and report_name("A/B C") == "A_B_C.html"


def test_coverage_gaps_are_ranges_of_trading_days_from_each_sets_first_day() -> None:
    days = list(trading_days(date(2025, 11, 24), date(2025, 12, 5)))   # Thanksgiving 27 Nov is not a day
    assert date(2025, 11, 27) not in days
    ohlcv = [10, 10, 0, 0, 10, 10, 10, 7, 10]    # 26 and 28 Nov missing, 4 Dec partial
    a3 = [0, 0, 0, 0, 0, 0, 2, 2, 0]
    cov = warehouse.Coverage(days, {"OHLCV": ohlcv, "option snapshots": [0] * 9, "A2": ohlcv, "A3": a3},
                             {"OHLCV": [10] * 9, "option snapshots": [2] * 9, "A2": ohlcv, "A3": [2] * 9})
    found = {g.dataset: g for g in warehouse.gaps(cov)}
    assert found["OHLCV"].first == date(2025, 11, 24)
    assert found["OHLCV"].missing == [(date(2025, 11, 26), date(2025, 11, 28), 2)]
    assert found["OHLCV"].partial == [(date(2025, 12, 4), date(2025, 12, 4), 1)]
    assert found["A2"].missing == [(date(2025, 11, 26), date(2025, 11, 28), 2)] and found["A2"].partial == []
    assert found["A3"].first == date(2025, 12, 3) and found["A3"].missing == [(date(2025, 12, 5), date(2025, 12, 5), 1)]
    assert found["option snapshots"].first is None
    page = warehouse.render(cov)
    assert "2025-11-26 .. 2025-11-28 (2)" in page and "no data in the window" in page
    assert page == warehouse.render(cov)
