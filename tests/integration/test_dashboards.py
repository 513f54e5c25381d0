"""The psql dashboards in docs/runbooks, run with psql against an empty and a hydrated database."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kapman.clock import close_of
from kapman.ids import ticker_id
from kapman.ops import status
from tests.support import database
from tests.support.hydrate import DAYS, GAP, HOLIDAY, UNRESOLVED, Hydrated, hydrate

pytestmark = pytest.mark.integration

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
PSQL = shutil.which("psql") or "/usr/bin/psql"

#: Every dashboard and the section titles (prefixes) it must print.
SECTIONS = {
    "ohlcv_dashboard.sql": ["verdict", "coverage", "rows per day", "gaps", "listed or delisted", "OHLC sanity",
                            "zero-volume rows",
                            "thinnest symbols", "busiest symbols", "watchlist coverage",
                            "ingest_files ledger summary", "latest loads"],
    "options_chains_dashboard.sql": ["verdict", "latest snapshot", "contracts per symbol", "NULL greeks and IV",
                                     "symbols with the most NULL gamma", "contracts per expiration",
                                     "watchlist coverage", "snapshot history", "latest options ingest runs"],
    "tickers_watchlists_dashboard.sql": ["verdict", "ticker universe", "universe by type", "watchlist membership",
                                         "unresolved active watchlist symbols",
                                         "inactive tickers still on active watchlists"],
    "daily_snapshots_dashboard.sql": ["verdict", "A2 coverage per date", "null indicator shares", "integrity checks",
                                      "offending rows", "key values for", "price_metrics_json for",
                                      "technical_indicators_json for"],
    "dealer_metrics_dashboard.sql": ["verdict", "status distribution per date", "walls and gamma flip",
                                     "INVALID and LIMITED reasons", "active watchlist symbols without dealer",
                                     "sample payloads"],
}


# --- running and reading psql ---------------------------------------------------------------------

def run(url: str, name: str, *variables: str, stdin: bool = False) -> str:
    """psql -X -v ON_ERROR_STOP=1 [-v NAME=VALUE ...] -d URL -f FILE (or < FILE), in a read-only session."""
    args = [PSQL, "-X", "-v", "ON_ERROR_STOP=1"]
    for variable in variables:
        args += ["-v", variable]
    args += ["-d", url]
    path = RUNBOOKS / name
    if not stdin:
        args += ["-f", str(path)]
    env = {**os.environ, "PGTZ": "UTC", "PGOPTIONS": "-c default_transaction_read_only=on"}
    proc = subprocess.run(args, input=path.read_text() if stdin else None, capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stderr}"
    assert "ERROR" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
    return proc.stdout


def sections(output: str) -> dict[str, str]:
    """Section title (between '== ' and ' ==') -> the text printed under it."""
    parts = re.split(r"^== (.+?) ==$", output, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def section(output: str, prefix: str) -> str:
    matches = [text for title, text in sections(output).items() if title.startswith(prefix)]
    assert len(matches) == 1, f"{len(matches)} sections titled {prefix!r}:\n{output}"
    return matches[0]


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every aligned psql table in ``text``: a list of rows, each {column: cell} (single-line cells)."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if i and re.fullmatch(r"-+(\+-+)*", line):
            header = [h.strip() for h in lines[i - 1].split("|")]
            rows = []
            for row in lines[i + 1:]:
                if re.fullmatch(r"\(\d+ rows?\)", row):
                    break
                rows.append(dict(zip(header, (c.strip() for c in row.split("|")), strict=True)))
            out.append(rows)
    return out


def table(output: str, prefix: str, index: int = 0) -> list[dict[str, str]]:
    return tables(section(output, prefix))[index]


def by(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    return {r[column]: r for r in rows}


# --- databases ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hydrated(new_rebuilt_db: database.NewRebuiltDb) -> Iterator[tuple[str, Hydrated]]:
    """One rebuilt and hydrated database shared by this module's read-only dashboard runs, on the
    frozen clock a sandbox database records (the newest instant it has seen: the last snapshot)."""
    with new_rebuilt_db("dash_") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            counts = hydrate(conn)
            conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = '2025-12-19 21:05+00'")
        yield url, counts


@pytest.fixture
def url(hydrated: tuple[str, Hydrated]) -> str:
    return hydrated[0]


# --- empty database -------------------------------------------------------------------------------

def test_every_dashboard_runs_on_an_empty_database(fresh_db: str) -> None:
    for name, titles in SECTIONS.items():
        out = run(fresh_db, name)
        for title in titles:
            section(out, title)
    ohlcv = run(fresh_db, "ohlcv_dashboard.sql")
    assert table(run(fresh_db, "tickers_watchlists_dashboard.sql"), "verdict")[0]["verdict"] == "FAIL"
    assert {r["violations"] for r in table(ohlcv, "OHLC sanity")} == {"0"}
    assert table(ohlcv, "coverage")[0]["rows"] == "0"
    snapshots = run(fresh_db, "daily_snapshots_dashboard.sql")
    assert {r["violations"] for r in table(snapshots, "integrity checks")} == {"0"}
    dealer = run(fresh_db, "dealer_metrics_dashboard.sql")
    assert "Selected date (SNAPSHOT_N): none\n" in dealer
    assert table(ohlcv, "verdict")[0]["verdict"] == "FAIL"
    assert table(run(fresh_db, "options_chains_dashboard.sql"), "verdict")[0]["verdict"] == "FAIL"
    assert table(dealer, "verdict")[0] == {"verdict": "WARN", "reason": "no option snapshots to compute from"}
    assert table(dealer, "walls and gamma flip") == []


# --- OHLCV ----------------------------------------------------------------------------------------

def test_ohlcv_dashboard_on_hydrated_database(hydrated: tuple[str, Hydrated]) -> None:
    url, counts = hydrated
    out = run(url, "ohlcv_dashboard.sql")
    assert "DAYS_BACK=30 SYMBOL_LIMIT=25" in out                      # the defaults
    coverage = table(out, "coverage")[0]
    assert (coverage["rows"], coverage["tickers"], coverage["max_date"]) == (str(counts.ohlcv_rows), "4",
                                                                               "2025-12-19")
    assert {r["rule"]: r["violations"] for r in table(out, "OHLC sanity")} == {
        "high < low": "0", "open outside [low, high]": "0", "close outside [low, high]": "0",
        "open/high/low/close <= 0": "0", "volume < 0": "0", "NaN or infinite price or volume": "0"}

    # NOW defaults to the warehouse's clock (public.kapman_now()): the database's frozen clock.
    assert "NOW=2025-12-19 21:05:00+00" in out
    assert table(out, "verdict") == [{"verdict": "OK", "reason": "every due trading day since 2025-11-20 has bars; "
                                                                 "every bar is sane"}]
    assert (coverage["files_due_since_max_date"]) == "0"
    days = by(table(out, "rows per day"), "date")
    assert len(days) == 22                                            # weekdays 2025-11-20 .. 2025-12-19
    assert days[HOLIDAY.isoformat()]["status"] == "holiday"           # NYSE calendar: Thanksgiving
    assert days["2025-12-19"] == {"date": "2025-12-19", "dow": "Fri", "rows": "4", "status": "ok"}

    # MSFT's missing day is a halt (the market traded), not a missing day.
    gaps = table(out, "gaps")
    assert [(g["symbol"], g["missing_dates"]) for g in gaps] == [(GAP[0], GAP[1].isoformat())]
    assert table(out, "listed or delisted") == []
    assert [r["symbol"] for r in table(out, "busiest symbols")] == ["NVDA", "SPY", "AAPL", "MSFT"]
    assert table(out, "zero-volume rows", 1)[0]["symbol"] == "NVDA"

    watch = table(out, "watchlist coverage")[0]
    assert (watch["active_symbols"], watch["resolved"], watch["with_bar"], watch["without_bar"]) == \
        ("6", "5", "4", "2")
    assert {r["symbol"]: r["reason"] for r in table(out, "watchlist coverage", 1)} == \
        {"OLDCO": "inactive ticker", UNRESOLVED: "no ticker"}
    ledger = table(out, "ingest_files ledger summary")[0]
    assert (ledger["files"], ledger["rows_rejected"], ledger["last_trading_date"]) == ("3", "1", "2025-12-19")
    assert len(table(out, "latest loads")) == 3


def test_ohlcv_watchlist_coverage_counts_an_index_apart_from_symbols_without_bars(url: str) -> None:
    """An index has options and A3 but no bars in the stock flat files: the demo's healthy warehouse
    listed I:SPX, I:NDX, I:RUT and I:VIX as 'no bar on latest date'."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO tickers (id, symbol, name, market, type, active) "
                     "VALUES (%s, 'I:SPX', 'S&P 500', 'indices', 'INDEX', true)", (ticker_id("I:SPX"),))
        conn.execute("INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
                     "VALUES ('indices', 'I:SPX', 'test', '2025-12-01')")
        try:
            out = run(url, "ohlcv_dashboard.sql")
        finally:
            conn.execute("DELETE FROM watchlists WHERE symbol = 'I:SPX'")
            conn.execute("DELETE FROM tickers WHERE symbol = 'I:SPX'")
    watch = by(table(out, "watchlist coverage"), "watchlist_id")
    assert {k: watch["indices"][k] for k in ("active_symbols", "resolved", "with_bar", "without_bar", "indices")} \
        == {"active_symbols": "1", "resolved": "1", "with_bar": "0", "without_bar": "0", "indices": "1"}
    assert (watch["mvp"]["without_bar"], watch["mvp"]["indices"]) == ("2", "0")
    assert "I:SPX" not in {r["symbol"] for r in table(out, "watchlist coverage", 1)}


def test_ohlcv_variables_from_the_command_line_win(url: str) -> None:
    # The runbook's own invocation: variables on the command line, the file on stdin.
    out = run(url, "ohlcv_dashboard.sql", "DAYS_BACK=5", "SYMBOL_LIMIT=3", stdin=True)
    assert "DAYS_BACK=5 SYMBOL_LIMIT=3" in out
    days = table(out, "rows per day")
    assert [d["date"] for d in days] == ["2025-12-19", "2025-12-18", "2025-12-17", "2025-12-16", "2025-12-15"]
    assert len(table(out, "busiest symbols")) == 3
    assert len(table(out, "thinnest symbols")) == 3
    assert table(out, "gaps") == []                                   # MSFT's gap is outside 5 days


def test_ohlcv_dashboard_by_kapmans_clock(url: str) -> None:
    # Tuesday 2025-12-23 12:00 New York: Monday's file is due and missing, Tuesday's is not due yet.
    out = run(url, "ohlcv_dashboard.sql", "NOW=2025-12-23T17:00:00Z", "DAYS_BACK=10")
    verdict = table(out, "verdict")[0]
    assert verdict["verdict"] == "WARN"
    assert verdict["reason"] == "1 due trading days without bars from 2025-12-22: python -m scripts.nightly"
    assert table(out, "coverage")[0]["files_due_since_max_date"] == "1"
    days = by(table(out, "rows per day"), "date")
    assert (days["2025-12-22"]["status"], days["2025-12-23"]["status"]) == ("missing", "not due yet")
    assert days["2025-12-19"]["status"] == "ok" and len(days) == 7     # weekdays 2025-12-15 .. 2025-12-23


def test_ohlcv_dashboard_lists_new_listings_apart_from_gaps(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        conn.execute("DELETE FROM public.ohlcv WHERE date < '2025-12-10' AND ticker_id = "
                     "(SELECT id FROM public.tickers WHERE symbol = 'SPY')")
        # NOW defaults to the warehouse's clock: this one's, as a sandbox records it.
        conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = '2025-12-19 21:05+00'")
    out = run(fresh_db, "ohlcv_dashboard.sql")
    assert [(r["symbol"], r["event"], r["first_bar"]) for r in table(out, "listed or delisted")] == \
        [("SPY", "listed", "2025-12-10")]
    assert [g["symbol"] for g in table(out, "gaps")] == [GAP[0]]
    assert table(out, "verdict")[0]["verdict"] == "OK"


# --- options chains -------------------------------------------------------------------------------

def test_options_chains_dashboard_on_hydrated_database(hydrated: tuple[str, Hydrated]) -> None:
    url, counts = hydrated
    out = run(url, "options_chains_dashboard.sql")
    latest_time, latest_rows = max(counts.options_rows.items())
    latest = table(out, "latest snapshot")[0]
    assert latest["snapshot_time"] == latest_time.strftime("%Y-%m-%d %H:%M:%S+00")
    assert (latest["symbols"], latest["contracts"], latest["unresolved_ticker_rows"]) == \
        ("2", str(latest_rows), "0")
    assert {s: r["contracts"] for s, r in by(table(out, "contracts per symbol"), "symbol").items()} == \
        {"AAPL": "40", "SPY": "12"}
    nulls = table(out, "NULL greeks and IV")[0]
    assert 0 < float(nulls["gamma_null_pct"]) < 100 and float(nulls["iv_null_pct"]) > 0

    # Distinct symbols, not contract rows: 2 of the 6 active symbols are in the latest snapshot.
    coverage = by(table(out, "watchlist coverage"), "watchlist_id")
    for scope in ("mvp", "(all watchlists)"):
        row = coverage[scope]
        assert (row["active_symbols"], row["resolved"], row["with_latest_snapshot"],
                row["with_snapshot_in_window"], row["missing_from_latest"]) == ("6", "5", "2", "3", "4")
    missing = by(table(out, "watchlist coverage", 1), "symbol")
    assert missing["MSFT"]["last_snapshot_time"] == "2025-12-18 21:05:00+00"
    assert missing[UNRESOLVED]["reason"] == "no ticker"

    history = table(out, "snapshot history")
    assert [(h["symbols"], h["contracts"]) for h in history] == \
        [("2", str(latest_rows)), ("3", str(min(counts.options_rows.items())[1]))]
    assert [r["status"] for r in table(out, "latest options ingest runs")] == ["partial", "ok"]
    # NOW defaults to the warehouse's clock, the newest snapshot's time: no age.  Today's snapshot
    # lacks MSFT and NVDA (a WARN, as status says) until midnight.
    assert latest["age"] == "00:00:00"
    assert table(out, "verdict")[0] == {"verdict": "WARN",
                                        "reason": "today's snapshot lacks 2 watchlist symbols: python -m "
                                                  "scripts.nightly before midnight New York"}


def test_options_dashboard_by_kapmans_clock(url: str) -> None:
    monday_evening = run(url, "options_chains_dashboard.sql", "NOW=2025-12-22T22:00:00Z")
    assert table(monday_evening, "latest snapshot")[0]["age"] == "3 days 00:55:00"
    verdict = table(monday_evening, "verdict")[0]
    assert verdict["verdict"] == "WARN" and verdict["reason"].startswith("today's session has closed without")
    tuesday = table(run(url, "options_chains_dashboard.sql", "NOW=2025-12-23T15:00:00Z"), "verdict")[0]
    assert tuesday == {"verdict": "WARN", "reason": "lost for good (never taken): 2025-12-22; symbols lost: "
                                                    "2025-12-18 (1), 2025-12-19 (2)"}



def test_a_date_as_now_is_that_days_close_in_new_york_as_kapman_now_reads_it(url: str) -> None:
    """KAPMAN_NOW=2025-12-23 is Tuesday's 16:00 close (kapman.clock), not midnight UTC (Monday
    evening in New York, when Monday's flat file was not due yet): -v NOW="$KAPMAN_NOW" reads the same."""
    for name in ("ohlcv_dashboard.sql", "options_chains_dashboard.sql", "daily_snapshots_dashboard.sql"):
        assert run(url, name, "NOW=2025-12-23") == run(url, name, "NOW=2025-12-23T21:00:00Z"), name
    out = run(url, "ohlcv_dashboard.sql", "NOW=2025-12-23", "DAYS_BACK=10")
    assert "NOW=2025-12-23 21:00:00+00" in out
    assert table(out, "verdict")[0]["reason"] == ("1 due trading days without bars from 2025-12-22: "
                                                  "python -m scripts.nightly")


# --- tickers and watchlists -----------------------------------------------------------------------

def test_tickers_watchlists_dashboard_on_hydrated_database(url: str) -> None:
    out = run(url, "tickers_watchlists_dashboard.sql")
    universe = table(out, "ticker universe")[0]
    assert (universe["tickers"], universe["active"], universe["inactive"]) == ("5", "4", "1")
    membership = by(table(out, "watchlist membership"), "watchlist_id")
    assert (membership["mvp"]["total"], membership["mvp"]["active"], membership["mvp"]["inactive"]) == \
        ("7", "6", "1")
    assert [r["symbol"] for r in table(out, "unresolved active watchlist symbols")] == [UNRESOLVED]
    assert [r["symbol"] for r in table(out, "inactive tickers still on active watchlists")] == ["OLDCO"]
    assert table(out, "verdict") == [{"verdict": "WARN", "reason": "1 active watchlist symbols without a ticker, "
                                      "1 with an inactive one: correct data/watchlists/*.txt"}]


# --- daily snapshots ------------------------------------------------------------------------------

def test_daily_snapshots_dashboard_on_hydrated_database(url: str) -> None:
    out = run(url, "daily_snapshots_dashboard.sql")
    assert "DAYS_BACK=10 SYMBOL=AAPL" in out
    per_date = table(out, "A2 coverage per date")
    assert len(per_date) == 10
    assert [d["status"] for d in per_date[:5]] == ["complete"] * 5
    assert per_date[0]["rows_with_dealer_metrics"] == "3" and per_date[0]["tickers_with_bar"] == "4"
    assert {r["rule"]: r["violations"] for r in table(out, "integrity checks")} == {
        "duplicate (ticker, date) pairs": "0", "rows not stamped 16:00 America/New_York": "0",
        "rows on a date without a bar for the ticker": "0", "rows whose ticker_id is not in tickers": "0"}
    assert table(out, "offending rows") == []
    # A2 began on 2025-12-15 (older dates have bars only, and are not a gap).
    assert table(out, "verdict") == [{"verdict": "OK",
                                      "reason": "one A2 row per bar on every date since A2 began (retention window)"}]

    shares = by(table(out, "null indicator shares"), "path")
    assert (shares["momentum.rsi.rsi"]["rows"], shares["momentum.rsi.rsi"]["null_pct"]) == ("4", "0.0")
    assert shares["trend.sma.sma_200"]["null_pct"] == "100.0"       # 40 bars of history
    assert {r["missing_key"] for r in shares.values()} == {"0"}
    assert len(table(out, "key values for AAPL")) == 5
    assert '"rsi": ' in section(out, "technical_indicators_json for AAPL")
    assert '"rvol": ' in section(out, "price_metrics_json for AAPL")


def test_daily_snapshots_verdict_owes_the_history_once_asked_as_status_does(fresh_db: str) -> None:
    """An A2 history asked for and not finished: status owes every earlier date with bars, and so does the
    dashboard's verdict (it had counted from A2's first date: OK)."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = '2025-12-19 21:05+00'")
        conn.execute("INSERT INTO ingest_runs (run_id, job, started_at, finished_at, status, args) VALUES "
                     "(gen_random_uuid(), 'a2', now(), now(), 'failed', '{\"history\": true}')")
        report = status.report(conn, with_archive=False)
    missing = report.check("a2").details["missing"]
    assert report.check("a2").verdict.name == "WARN" and len(missing) == 35
    assert table(run(fresh_db, "daily_snapshots_dashboard.sql"), "verdict")[0] == {
        "verdict": "WARN", "reason": f"{len(missing)} dates with bars and no A2 from {missing[0]}: python -m "
                                     "scripts.nightly"}


def test_daily_snapshots_variables_from_the_command_line_win(url: str) -> None:
    out = run(url, "daily_snapshots_dashboard.sql", "DAYS_BACK=3", "SYMBOL=msft")
    dates = [d["date"] for d in table(out, "A2 coverage per date")]
    assert dates == ["2025-12-19", "2025-12-18", "2025-12-17"]
    assert len(table(out, "key values for msft")) == 3
    assert "MSFT" in section(out, "technical_indicators_json for msft")


def test_the_dashboards_verdicts_match_status_by_the_same_clock(fresh_db: str) -> None:
    """Five dates without A2 after A2 began, older than the dashboard's DAYS_BACK dates: status and
    the daily-snapshots dashboard both WARN; options likewise, by the database's recorded clock."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = '2025-12-19 21:05+00'")
        # A2 back to 2025-11-28, then five dates without it (2025-12-08 .. 12-12).
        conn.execute("""
            INSERT INTO daily_snapshots (time, ticker_id, technical_indicators_json)
            SELECT ((o.date + time '16:00') AT TIME ZONE 'America/New_York'), o.ticker_id, '{}'::jsonb
              FROM ohlcv o WHERE o.date BETWEEN '2025-11-28' AND '2025-12-05'
            ON CONFLICT (time, ticker_id) DO UPDATE SET technical_indicators_json = '{}'::jsonb""")
        report = status.report(conn, with_archive=False)
    a2 = report.check("a2")
    assert a2.verdict.name == "WARN" and [str(d) for d in a2.details["missing"]] == [
        "2025-12-08", "2025-12-09", "2025-12-10", "2025-12-11", "2025-12-12"]
    snapshots = table(run(fresh_db, "daily_snapshots_dashboard.sql"), "verdict")[0]
    assert snapshots == {"verdict": "WARN", "reason": "5 dates with bars and no A2 from 2025-12-08: python -m "
                                                      "scripts.nightly"}
    options = table(run(fresh_db, "options_chains_dashboard.sql"), "verdict")[0]
    assert options["verdict"] == report.check("options").verdict.name == "WARN"


# --- dealer metrics -------------------------------------------------------------------------------

def test_dealer_metrics_verdict_owes_every_snapshot_date_as_status_does(fresh_db: str) -> None:
    """An older snapshot date without A3 while the newest has it: status's a3 area WARNs, and so does the
    dashboard (it had looked at the newest snapshot and the selected date only: OK)."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = '2025-12-19 21:05+00'")
        conn.execute("UPDATE daily_snapshots SET dealer_metrics_json = NULL WHERE time = %s", (close_of(DAYS[-2]),))
        report = status.report(conn, with_archive=False)
    assert report.check("a3").verdict.name == "WARN" and report.check("a3").details["missing"] == [DAYS[-2]]
    assert table(run(fresh_db, "dealer_metrics_dashboard.sql"), "verdict")[0] == {
        "verdict": "WARN", "reason": f"1 snapshot dates without dealer metrics from {DAYS[-2]}: python -m "
                                     "scripts.nightly"}


def test_dealer_metrics_dashboard_on_hydrated_database(url: str) -> None:
    out = run(url, "dealer_metrics_dashboard.sql")
    assert "Selected date (SNAPSHOT_N): 2025-12-19\n" in out
    per_date = by(table(out, "status distribution per date"), "date")
    assert {d: (r["FULL"], r["LIMITED"], r["INVALID"], r["other"]) for d, r in per_date.items()} == \
        {"2025-12-19": ("1", "1", "1", "0"), "2025-12-18": ("2", "1", "0", "0")}
    walls = by(table(out, "walls and gamma flip"), "symbol")
    assert {s: r["status"] for s, r in walls.items()} == {"AAPL": "FULL", "MSFT": "INVALID", "SPY": "LIMITED"}
    aapl = walls["AAPL"]
    spot = float(aapl["spot"])
    assert float(aapl["gex_gross"]) > 0 and aapl["position"] in ("long_gamma", "short_gamma", "neutral")
    for level in ("gamma_flip", "call_wall", "put_wall", "max_pain"):
        assert 0.8 * spot < float(aapl[level]) < 1.2 * spot
    assert walls["MSFT"]["gex_net"] == "(null)"
    reasons = {(r["status"], r["reason"]): r["examples"] for r in table(out, "INVALID and LIMITED reasons")}
    assert reasons == {("INVALID", "no_snapshot"): "MSFT", ("LIMITED", "few_eligible_contracts"): "SPY"}
    assert [r["symbol"] for r in table(out, "active watchlist symbols without dealer")] == ["NVDA"]
    assert table(out, "verdict") == [{"verdict": "WARN", "reason": "1 active watchlist symbols without dealer "
                                      "metrics on 2025-12-19: python -m scripts.run_a3_dealer_metrics --date "
                                      "2025-12-19"}]                # NVDA
    # Summaries by default, whole documents only when asked for.
    samples = table(out, "sample payloads")
    assert [(r["symbol"], r["status"]) for r in samples] == [("AAPL", "FULL"), ("MSFT", "INVALID"),
                                                             ("SPY", "LIMITED")]
    assert samples[1]["status_reason"] == "no_snapshot" and '"status": ' not in section(out, "sample payloads")
    payloads = section(run(url, "dealer_metrics_dashboard.sql", "PAYLOADS=on"), "sample payloads")
    assert payloads.count('"status": ') == 3 and "(3 rows)" in payloads
    assert payloads.index('"status": "FULL"') < payloads.index('"status": "INVALID"')


def test_dealer_metrics_snapshot_n_selects_an_earlier_date(url: str) -> None:
    out = run(url, "dealer_metrics_dashboard.sql", "SNAPSHOT_N=2")
    assert "Selected date (SNAPSHOT_N): 2025-12-18\n" in out
    assert {s: r["status"] for s, r in by(table(out, "walls and gamma flip"), "symbol").items()} == \
        {"AAPL": "FULL", "MSFT": "FULL", "SPY": "LIMITED"}
    beyond = run(url, "dealer_metrics_dashboard.sql", "SNAPSHOT_N=3")
    assert "Selected date (SNAPSHOT_N): none\n" in beyond
    assert table(beyond, "walls and gamma flip") == []
    assert len(table(beyond, "status distribution per date")) == 2


# --- the checks catch what they are for -----------------------------------------------------------

def test_integrity_checks_report_violations(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        with conn.transaction():
            # a bar with high < low and a close above the high
            conn.execute("UPDATE public.ohlcv SET high = low - 1 WHERE date = '2025-12-19' AND ticker_id = "
                         "(SELECT id FROM public.tickers WHERE symbol = 'SPY')")
            # a second AAPL row on 2025-12-19 (midnight New York), and an MSFT row on its missing day
            conn.execute("""
                INSERT INTO public.daily_snapshots (time, ticker_id, technical_indicators_json)
                SELECT timestamptz '2025-12-19 00:00 America/New_York', id, '{}'::jsonb FROM public.tickers
                 WHERE symbol = 'AAPL'
                UNION ALL
                SELECT timestamptz '2025-12-03 16:00 America/New_York', id, '{}'::jsonb FROM public.tickers
                 WHERE symbol = 'MSFT'""")
    sanity = {r["rule"]: r for r in table(run(fresh_db, "ohlcv_dashboard.sql"), "OHLC sanity")}
    assert (sanity["high < low"]["violations"], sanity["high < low"]["result"]) == ("1", "VIOLATION")
    assert sanity["close outside [low, high]"]["violations"] == "1"
    assert sanity["volume < 0"]["violations"] == "0"

    out = run(fresh_db, "daily_snapshots_dashboard.sql", "DAYS_BACK=15")
    checks = {r["rule"]: r["violations"] for r in table(out, "integrity checks")}
    assert checks["duplicate (ticker, date) pairs"] == "1"
    assert checks["rows not stamped 16:00 America/New_York"] == "1"
    assert checks["rows on a date without a bar for the ticker"] == "1"
    # MSFT's stray row makes A2 appear to begin on 2025-12-03, so the dates after it read as missing.
    assert table(out, "verdict")[0] == {
        "verdict": "WARN", "reason": "7 dates with bars and no A2 from 2025-12-04: python -m scripts.nightly"}
    offending = {(r["symbol"], r["date"]): r["problems"] for r in table(out, "offending rows")}
    assert offending[("MSFT", "2025-12-03")] == "no bar that date"
    assert offending[("AAPL", "2025-12-19")].startswith("duplicate date")


def test_daily_snapshots_symbol_is_case_sensitive(fresh_db: str) -> None:
    from kapman.ids import ticker_id

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for symbol, close in (("AAP", 61.5), ("AAp", 71.25)):
            conn.execute("INSERT INTO tickers (id, symbol, type) VALUES (%s, %s, 'CS')", (ticker_id(symbol), symbol))
            conn.execute("INSERT INTO daily_snapshots (time, ticker_id, price_metrics_json) "
                         "VALUES ('2025-12-19 21:00+00', %s, %s)", (ticker_id(symbol), f'{{"close": {close}}}'))
    exact = section(run(fresh_db, "daily_snapshots_dashboard.sql", "SYMBOL=AAp"), "price_metrics_json for AAp")
    assert "71.25" in exact and "61.5" not in exact
    folded = section(run(fresh_db, "daily_snapshots_dashboard.sql", "SYMBOL=aap"), "price_metrics_json for aap")
    assert "61.5" in folded and "71.25" not in folded           # no ticker 'aap': its upper-case form
