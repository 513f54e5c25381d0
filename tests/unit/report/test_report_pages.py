"""Report pages from in-memory data: key values, offline and deterministic HTML, coverage gaps."""

from __future__ import annotations

import re
from datetime import date

from kapman.calendar import trading_days
from kapman.report import symbol, warehouse
from kapman.report.keyvalues import key_values, terminal_table, usd
from kapman.report.watchlist import report_name
from tests.support.symbolday import symbol_day


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
    assert report_name("BRK.B") == "BRK.B.html" and report_name("I:SPX") == "I-SPX.html"


def test_report_file_names_differ_on_a_case_insensitive_file_system() -> None:
    """AAp (a preferred share) and AAP are two companies: their pages must not overwrite each other where
    the file system ignores case (macOS, Windows)."""
    symbols = ["AAP", "AAp", "Ap", "I:P", "IP", "Ip", "BRK.B", "BRK.b"]
    names = [report_name(s) for s in symbols]
    assert names[:3] == ["AAP.html", "AA_p.html", "A_p.html"]
    assert len({n.lower() for n in names}) == len(symbols)
    assert len({report_name(f"{s}-2025-12-19").lower() for s in symbols}) == len(symbols)


def test_coverage_gaps_are_ranges_of_trading_days_from_each_sets_first_day() -> None:
    days = list(trading_days(date(2025, 11, 24), date(2025, 12, 5)))   # Thanksgiving 27 Nov is not a day
    assert date(2025, 11, 27) not in days
    ohlcv = [10, 10, 0, 0, 10, 10, 10, 4, 10]    # 26 and 28 Nov missing, 4 Dec partial (under half)
    a2 = [10, 10, 0, 0, 10, 0, 10, 4, 10]        # and A2 lacks 2 Dec
    a3 = [0, 0, 0, 0, 0, 0, 2, 2, 0]
    cov = warehouse.Coverage(days, {"OHLCV": ohlcv, "option snapshots": [0] * 9, "A2": a2, "A3": a3},
                             {"OHLCV": [10] * 9, "option snapshots": [2] * 9, "A2": ohlcv, "A3": [2] * 9})
    found = {g.dataset: g for g in warehouse.gaps(cov)}
    assert found["OHLCV"].first == date(2025, 11, 24)
    assert found["OHLCV"].missing == [(date(2025, 11, 26), date(2025, 11, 28), 2)]
    assert found["OHLCV"].partial == [(date(2025, 12, 4), date(2025, 12, 4), 1)]
    # a day without bars owes no A2 (the OHLCV row lists it), as status counts A2
    assert found["A2"].missing == [(date(2025, 12, 2), date(2025, 12, 2), 1)] and found["A2"].partial == []
    assert found["A3"].first == date(2025, 12, 3) and found["A3"].missing == [(date(2025, 12, 5), date(2025, 12, 5), 1)]
    assert found["option snapshots"].first is None
    page = warehouse.render(cov)
    assert "2025-11-26 .. 2025-11-28 (2)" in page and "no data in the window" in page
    assert page == warehouse.render(cov)


def test_a3_is_owed_on_days_with_a_snapshot_from_the_first_one() -> None:
    """As status counts A3: a snapshot day before A3's first day is owed; a day without a snapshot is not."""
    days = list(trading_days(date(2025, 12, 1), date(2025, 12, 5)))
    snapshots, a3 = [2, 2, 0, 2, 2], [0, 0, 0, 2, 0]
    cov = warehouse.Coverage(days, {"OHLCV": [10] * 5, "option snapshots": snapshots, "A2": [10] * 5, "A3": a3},
                             {"OHLCV": [10] * 5, "option snapshots": [2] * 5, "A2": [10] * 5,
                              "A3": [2 if n else 0 for n in snapshots]}, {"A3": days[0]})
    found = {g.dataset: g for g in warehouse.gaps(cov)}
    assert found["A3"].first == days[0]
    assert found["A3"].missing == [(days[0], days[1], 2), (days[4], days[4], 1)]
    z = warehouse.heatmap(cov)["data"][0]["z"][3]
    assert z == [0.0, 0.0, None, 100.0, 0.0]


def test_a_snapshot_or_a2_one_short_is_partial_as_status_says() -> None:
    """Status says a snapshot without one symbol lost it and a date one A2 row short of its bars
    partial: the page lists them (a share of 0.9 or more had passed as covered); a flat file is
    partial under half of its usual count, as status's thin days."""
    days = list(trading_days(date(2025, 12, 1), date(2025, 12, 3)))
    cov = warehouse.Coverage(days, {"OHLCV": [20, 19, 20], "option snapshots": [10, 9, 10], "A2": [20, 18, 20],
                                    "A3": [10, 10, 10]},
                             {"OHLCV": [20] * 3, "option snapshots": [10] * 3, "A2": [20, 19, 20], "A3": [10] * 3})
    found = {g.dataset: g for g in warehouse.gaps(cov)}
    assert found["option snapshots"].partial == [(days[1], days[1], 1)]
    assert found["A2"].partial == [(days[1], days[1], 1)]
    assert found["OHLCV"].partial == [] and found["A3"].partial == []
    # A flat file is partial under half of its usual count, as status's thin days.
    thin = warehouse.Coverage(days, {**cov.counts, "OHLCV": [20, 9, 20]}, cov.expected)
    assert {g.dataset: g for g in warehouse.gaps(thin)}["OHLCV"].partial == [(days[1], days[1], 1)]
