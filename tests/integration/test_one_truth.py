"""One warehouse state, one answer: status (the inventory), the psql dashboards, the warehouse page
and ``kapman snapshots --json`` say the same days and symbols are missing, by the same clock.

Each test builds a state on the hydrated data set (tests/support/hydrate.py) with the database's
frozen clock, as a sandbox leaves it, and no KAPMAN_NOW: every reader must take the warehouse's.
NVDA leaves the watchlist first, so the scope is AAPL, MSFT and SPY and 2025-12-18 is complete.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kapman.clock import NEW_YORK, close_of
from kapman.ops import status
from kapman.report import warehouse
from kapman.views import snapshots
from tests.integration.test_dashboards import run, table
from tests.support.hydrate import hydrate

pytestmark = pytest.mark.integration

FULL = datetime(2025, 12, 18, 21, 5, tzinfo=UTC)      # hydrate's snapshot of AAPL, MSFT and SPY
SCOPE = ["AAPL", "MSFT", "SPY"]


@pytest.fixture
def state(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, psycopg.Connection]]:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    monkeypatch.setenv("DATABASE_URL", fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        conn.execute("UPDATE watchlists SET active = false WHERE symbol = 'NVDA'")
        freeze(conn, datetime(2025, 12, 19, 21, 5, tzinfo=UTC))
        yield fresh_db, conn


def freeze(conn: psycopg.Connection, at: datetime) -> None:
    conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = %s", (at,))


def snap(conn: psycopg.Connection, day: date, symbols: list[str], at: time = time(16, 5),
         empty: tuple[str, ...] = ()) -> datetime:
    """A snapshot of ``day`` at ``at`` New York: 2025-12-18's chains of ``symbols``, and its options
    run, which found no contracts listed for ``empty``."""
    taken = datetime.combine(day, at, tzinfo=NEW_YORK)
    conn.execute("CREATE TEMP TABLE copied AS SELECT * FROM options_chains WHERE time = %s "
                 "AND ticker_id IN (SELECT id FROM tickers WHERE symbol = ANY(%s))", (FULL, symbols))
    conn.execute("UPDATE copied SET time = %s", (taken,))
    conn.execute("INSERT INTO options_chains SELECT * FROM copied")
    conn.execute("DROP TABLE copied")
    outcomes = {s: {"status": "ok"} for s in symbols} | {s: {"status": "empty"} for s in empty}
    conn.execute("INSERT INTO ingest_runs (run_id, job, started_at, finished_at, status, snapshot_time, args, "
                 "summary) VALUES (%s, 'options', %s, %s, 'ok', %s, '{}', %s)",
                 (uuid.uuid4(), taken, taken + timedelta(minutes=2), taken, Jsonb({"outcomes": outcomes})))
    return taken


def page(conn: psycopg.Connection) -> dict[str, tuple[list[date], list[date]]]:
    """The warehouse page's gaps: data set -> (missing days, partial days)."""
    cov = warehouse.coverage(conn)

    def days(found: list[tuple[date, date, int]]) -> list[date]:
        return [d for a, b, _ in found for d in cov.days if a <= d <= b]
    return {g.dataset: (days(g.missing), days(g.partial)) for g in warehouse.gaps(cov)}


def sessions_listed(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """``kapman snapshots --json``: New York date -> its session column."""
    assert snapshots.main(["--json", "--limit", "50"]) == 0
    return {r["date"]: r["session"] for r in json.loads(capsys.readouterr().out)["snapshots"]}


def verdict(url: str, dashboard: str) -> dict[str, str]:
    return table(run(url, dashboard), "verdict")[0]


def test_a_missed_day_a_partial_and_an_empty_symbol_read_alike(
        state: tuple[str, psycopg.Connection], capsys: pytest.CaptureFixture[str]) -> None:
    """12-15 complete; 12-16 never taken; 12-17 without MSFT; 12-18 complete; 12-19 (today, until
    midnight) lacks MSFT.  12-15's run found no contracts for SPY: complete, as status counts it."""
    url, conn = state
    snap(conn, date(2025, 12, 15), ["AAPL", "MSFT"], empty=("SPY",))
    snap(conn, date(2025, 12, 17), ["AAPL", "SPY"])
    report = status.report(conn, with_archive=False)
    options = report.check("options").details
    assert options["lost_recent"] == [date(2025, 12, 16)]
    assert options["lost_symbols"] == {"2025-12-17": ["MSFT"]} and options["pending_missing"] == ["MSFT"]
    assert verdict(url, "options_chains_dashboard.sql") == {
        "verdict": "WARN", "reason": "today's snapshot lacks 1 watchlist symbols: python -m scripts.nightly "
                                     "before midnight New York; lost: 2025-12-16"}
    tomorrow = table(run(url, "options_chains_dashboard.sql", "NOW=2025-12-20T15:00:00Z"), "verdict")[0]
    assert tomorrow["reason"] == ("lost for good (never taken): 2025-12-16; symbols lost: 2025-12-17 (1), "
                                  "2025-12-19 (1)")
    missing, partial = page(conn)["option snapshots"]
    assert missing == [date(2025, 12, 16)] and partial == [date(2025, 12, 17), date(2025, 12, 19)]
    assert sessions_listed(capsys) == {"2025-12-19": "1 missing", "2025-12-18": "complete",
                                       "2025-12-17": "1 missing", "2025-12-15": "complete"}
    # A3 is owed on every snapshot day without it (hydrate computed 12-18 and 12-19 only).
    assert report.check("a3").details["missing"] == [date(2025, 12, 15), date(2025, 12, 17)]
    assert page(conn)["A3"][0] == [date(2025, 12, 15), date(2025, 12, 17)]
    assert verdict(url, "dealer_metrics_dashboard.sql")["reason"].startswith(
        "2 snapshot dates without dealer metrics from 2025-12-15")


def test_a_chain_before_the_close_is_no_snapshot_of_the_session(
        state: tuple[str, psycopg.Connection], capsys: pytest.CaptureFixture[str]) -> None:
    """Chains taken at 11:00 on 12-17 (a run by hand in the session) are not its snapshot: status and
    the dashboard say its symbols are lost, and the page said the day was covered."""
    url, conn = state
    snap(conn, date(2025, 12, 17), SCOPE, at=time(11, 0))
    report = status.report(conn, with_archive=False)
    assert report.check("options").details["lost_symbols"] == {"2025-12-17": SCOPE}
    tomorrow = table(run(url, "options_chains_dashboard.sql", "NOW=2025-12-20T15:00:00Z"), "verdict")[0]
    assert tomorrow["reason"] == "symbols lost for good: 2025-12-17 (3), 2025-12-19 (1)"
    assert page(conn)["option snapshots"] == ([date(2025, 12, 17)], [date(2025, 12, 19)])
    assert sessions_listed(capsys)["2025-12-17"] == "3 missing"


def test_an_early_close_and_a_holiday_read_alike(
        state: tuple[str, psycopg.Connection], capsys: pytest.CaptureFixture[str]) -> None:
    """Christmas Eve closes at 13:00 and its snapshot is taken at 13:30; Christmas is no session.
    By the clock of 12-26's evening every session has its snapshot."""
    url, conn = state
    snap(conn, date(2025, 12, 19), ["MSFT"], at=time(16, 30))
    for day, at in ((date(2025, 12, 22), time(16, 5)), (date(2025, 12, 23), time(16, 5)),
                    (date(2025, 12, 24), time(13, 30)), (date(2025, 12, 26), time(16, 5))):
        snap(conn, day, SCOPE, at=at)
    freeze(conn, datetime(2025, 12, 26, 21, 30, tzinfo=UTC))
    report = status.report(conn, with_archive=False)
    options = report.check("options")
    assert options.verdict.name == "OK" and options.details["lost"] == [] and options.details["lost_symbols"] == {}
    assert verdict(url, "options_chains_dashboard.sql")["verdict"] == "OK"
    assert page(conn)["option snapshots"] == ([], [])
    listed = sessions_listed(capsys)
    assert set(listed.values()) == {"complete"} and "2025-12-25" not in listed
    due = [date(2025, 12, 22), date(2025, 12, 23), date(2025, 12, 24), date(2025, 12, 26)]
    assert report.check("a3").details["missing"] == due and page(conn)["A3"][0] == due
    assert verdict(url, "dealer_metrics_dashboard.sql")["reason"].startswith(
        "the snapshot of 2025-12-26 has no dealer metrics")


def test_a_date_without_a2_and_a_day_whose_file_is_not_due(state: tuple[str, psycopg.Connection]) -> None:
    """A2 lacks 12-17 and MSFT's row of 12-16; 12-19's flat file is due the next morning, so its bars
    (not loaded yet) are missing nowhere."""
    url, conn = state
    conn.execute("UPDATE daily_snapshots SET technical_indicators_json = NULL WHERE time = %s",
                 (close_of(date(2025, 12, 17)),))
    conn.execute("UPDATE daily_snapshots SET technical_indicators_json = NULL WHERE time = %s "
                 "AND ticker_id = (SELECT id FROM tickers WHERE symbol = 'MSFT')", (close_of(date(2025, 12, 16)),))
    conn.execute("DELETE FROM ohlcv WHERE date = '2025-12-19'")
    conn.execute("DELETE FROM daily_snapshots WHERE time = %s", (close_of(date(2025, 12, 19)),))
    report = status.report(conn, with_archive=False)
    a2 = report.check("a2").details
    assert a2["missing"] == [date(2025, 12, 17)] and a2["partial"] == [date(2025, 12, 16)]
    assert report.check("ohlcv").details["missing"] == []
    gaps = page(conn)
    assert gaps["A2"] == ([date(2025, 12, 17)], [date(2025, 12, 16)])
    assert date(2025, 12, 19) not in gaps["OHLCV"][0]
    assert verdict(url, "daily_snapshots_dashboard.sql") == {
        "verdict": "WARN", "reason": "1 dates with bars and no A2 from 2025-12-17: python -m scripts.nightly"}
    ohlcv = table(run(url, "ohlcv_dashboard.sql"), "verdict")[0]
    assert "2025-12-19" not in ohlcv["reason"]


def test_a_session_lost_before_the_last_ten_is_history_to_both(state: tuple[str, psycopg.Connection]) -> None:
    """Snapshots from 12-04 on, 12-05 never taken: by 12-19's evening 12-05 is the eleventh closed
    session back.  Status calls it an older session lost (OK); the dashboard's 14 calendar days
    (12-05 .. 12-19, eleven sessions) had warned it was lost."""
    url, conn = state
    snap(conn, date(2025, 12, 4), SCOPE)
    for day in (date(2025, 12, 8), date(2025, 12, 9), date(2025, 12, 10), date(2025, 12, 11),
                date(2025, 12, 12), date(2025, 12, 15), date(2025, 12, 16), date(2025, 12, 17)):
        snap(conn, day, SCOPE)
    snap(conn, date(2025, 12, 19), ["MSFT"], at=time(16, 30))
    options = status.report(conn, with_archive=False).check("options")
    assert options.verdict.name == "OK" and options.details["lost"] == [date(2025, 12, 5)]
    assert options.details["lost_recent"] == [] and options.summary.endswith("; 1 older sessions lost")
    assert verdict(url, "options_chains_dashboard.sql") == {
        "verdict": "OK", "reason": "each of the last 10 closed sessions has a chain of every watchlist symbol"}
    # A loss among the last ten warns in both.
    conn.execute("DELETE FROM options_chains WHERE time = %s", (datetime.combine(date(2025, 12, 16), time(16, 5),
                                                                                 tzinfo=NEW_YORK),))
    assert status.report(conn, with_archive=False).check("options").details["lost_recent"] == [date(2025, 12, 16)]
    assert verdict(url, "options_chains_dashboard.sql") == {
        "verdict": "WARN", "reason": "lost for good (never taken): 2025-12-16"}


def test_a2_missing_on_the_retention_windows_first_days(state: tuple[str, psycopg.Connection]) -> None:
    """A 10-day window by 12-19's clock begins on 12-09.  A2 ran for 12-08 (its row kept: retention
    drops whole chunks) and not for 12-09 .. 12-12: status owes those four dates (A2 began before
    them); the dashboard and the page looked for A2's start inside the window only (12-15): OK."""
    url, conn = state
    conn.execute("UPDATE hypertable_lifecycle SET drop_after = interval '10 days' WHERE hypertable_name = 'ohlcv'")
    conn.execute("INSERT INTO daily_snapshots (time, ticker_id, technical_indicators_json) "
                 "SELECT %s, ticker_id, '{}'::jsonb FROM ohlcv WHERE date = '2025-12-08'",
                 (close_of(date(2025, 12, 8)),))
    owed = [date(2025, 12, 9), date(2025, 12, 10), date(2025, 12, 11), date(2025, 12, 12)]
    assert status.report(conn, with_archive=False).check("a2").details["missing"] == owed
    assert page(conn)["A2"][0] == owed
    assert verdict(url, "daily_snapshots_dashboard.sql") == {
        "verdict": "WARN", "reason": "4 dates with bars and no A2 from 2025-12-09: python -m scripts.nightly"}


def test_a_symbol_that_joined_after_a_date_owes_it_no_a3(state: tuple[str, psycopg.Connection]) -> None:
    """NVDA joins the watchlist on 12-19: 12-18's A3 lacks it, and rightly (status's scope of 12-18);
    the dealer dashboard counted every symbol active now."""
    url, conn = state
    conn.execute("UPDATE watchlists SET active = true, effective_date = '2025-12-19' WHERE symbol = 'NVDA'")
    assert status.report(conn, with_archive=False).check("a3").details["stale"] == {}
    out = run(url, "dealer_metrics_dashboard.sql", "SNAPSHOT_N=2")
    assert table(out, "verdict")[0] == {"verdict": "OK", "reason": "dealer metrics for the newest snapshot "
                                                                   "(2025-12-19) and every watchlist symbol"}
    assert table(out, "active watchlist symbols without dealer") == []


def test_a_partial_flat_file_warns_in_status_and_the_ohlcv_dashboard(state: tuple[str, psycopg.Connection]) -> None:
    """12-17's file held one ticker's bars of four: status calls it a partial file; the dashboard's
    verdict looked only for days without any bar (OK)."""
    url, conn = state
    conn.execute("DELETE FROM ohlcv WHERE date = '2025-12-17' AND ticker_id IN "
                 "(SELECT id FROM tickers WHERE symbol <> 'AAPL')")
    ohlcv = status.report(conn, with_archive=False).check("ohlcv")
    assert ohlcv.details["thin"] == [date(2025, 12, 17)]
    assert verdict(url, "ohlcv_dashboard.sql") == {
        "verdict": "WARN", "reason": "1 partial files (under half the bars of the days before) from 2025-12-17: "
                                     "python -m scripts.ingest_ohlcv backfill --start 2025-12-17 --end 2025-12-17 "
                                     "--force"}
    assert page(conn)["OHLCV"] == ([], [date(2025, 12, 17)])


def test_snapshots_lost_on_the_retention_windows_first_days(state: tuple[str, psycopg.Connection]) -> None:
    """A 10-day window by 12-19's clock begins on 12-09; the snapshot of 12-08 (the evening before it)
    is kept and 12-09 .. 12-17 were never taken: status counts them lost from 12-09, and so does the
    page (it counted from the first snapshot inside the window, 12-18)."""
    url, conn = state
    conn.execute("UPDATE hypertable_lifecycle SET drop_after = interval '10 days' WHERE hypertable_name = 'ohlcv'")
    snap(conn, date(2025, 12, 8), SCOPE)
    lost = [date(2025, 12, 9), date(2025, 12, 10), date(2025, 12, 11), date(2025, 12, 12), date(2025, 12, 15),
            date(2025, 12, 16), date(2025, 12, 17)]
    assert status.report(conn, with_archive=False).check("options").details["lost"] == lost
    assert page(conn)["option snapshots"][0] == lost


def test_chains_of_a_weekend_or_a_holiday_owe_no_a3(state: tuple[str, psycopg.Connection]) -> None:
    """An options run by hand on Saturday 12-20 and on Christmas stores chains under those dates; A3
    computes trading dates only (it refuses --date 2025-12-20), so neither status nor the dealer
    dashboard may owe it there: both asked for it, a WARN no run could mend."""
    url, conn = state
    snap(conn, date(2025, 12, 20), SCOPE, at=time(12, 0))
    snap(conn, date(2025, 12, 25), SCOPE, at=time(12, 0))
    freeze(conn, datetime(2025, 12, 25, 18, 0, tzinfo=UTC))
    a3 = status.report(conn, with_archive=False).check("a3")
    assert a3.details["missing"] == [] and a3.verdict.name == "OK", a3.summary
    assert verdict(url, "dealer_metrics_dashboard.sql")["verdict"] == "OK"
    assert page(conn)["A3"] == ([], [])


def test_the_archive_state_reads_alike(state: tuple[str, psycopg.Connection],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing archived yet: status's archive area and every snapshot of ``kapman snapshots`` say so."""
    _, conn = state
    snap(conn, date(2025, 12, 17), SCOPE)
    archive = status.report(conn).check("archive")
    assert snapshots.main(["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["snapshots"]
    assert archive.details["not_archived"] == len(rows) == 3
    assert {r["archive"] for r in rows} == {"not archived"}


def test_a_watchlist_symbol_with_an_inactive_ticker_warns_in_both(state: tuple[str, psycopg.Connection]) -> None:
    """OLDCO (delisted) stays on the watchlist and ZZZZ leaves it: the symbol is out of the scope and
    gets no snapshot; the tickers dashboard warned, status said OK."""
    url, conn = state
    conn.execute("UPDATE watchlists SET active = false WHERE symbol = 'ZZZZ'")
    tickers = status.report(conn, with_archive=False).check("tickers")
    assert tickers.verdict.name == "WARN" and tickers.details["inactive_watchlist_symbols"] == 1
    assert tickers.summary.endswith(", 0 without a ticker, 1 with an inactive one (no snapshots)")
    assert verdict(url, "tickers_watchlists_dashboard.sql") == {
        "verdict": "WARN", "reason": "0 active watchlist symbols without a ticker, 1 with an inactive one: "
                                     "correct data/watchlists/*.txt"}


def test_a_chain_fetched_after_a3_ran_makes_its_a3_stale_in_both(state: tuple[str, psycopg.Connection]) -> None:
    """AAPL's chain of 12-19 is fetched again at 16:30, after A3 ran on the 16:05 one: status's a3 area
    says its A3 is stale; the dealer dashboard's verdict said OK."""
    url, conn = state
    snap(conn, date(2025, 12, 19), ["AAPL"], at=time(16, 30))
    a3 = status.report(conn, with_archive=False).check("a3")
    assert a3.verdict.name == "WARN" and a3.details["stale"] == {"2025-12-19": ["AAPL"]}
    assert verdict(url, "dealer_metrics_dashboard.sql") == {
        "verdict": "WARN", "reason": "1 symbols on 2025-12-19 computed before their chain of the day: python -m "
                                     "scripts.run_a3_dealer_metrics --date 2025-12-19"}
