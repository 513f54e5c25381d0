"""scripts.report and scripts.show against a hydrated database: values, missing data, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from kapman.clock import close_of
from kapman.ops import status
from kapman.report import page as report_page
from kapman.report import warehouse
from kapman.report.data import load_symbol_day
from tests.support import database
from tests.support.hydrate import DAYS, GAP, HOLIDAY, LAST_DAY, hydrated_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def url(new_rebuilt_db: database.NewRebuiltDb) -> Iterator[str]:
    """One rebuilt and hydrated database shared by the module's read-only reports."""
    with hydrated_database(new_rebuilt_db, "report_") as url:
        yield url


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", str(LAST_DAY))


def cli(module: str, url: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m module`` as the runbook runs it from the checkout (``scripts`` found there), in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", module, "--db-url", url, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def test_report_values_are_the_stored_ones(url: str) -> None:
    with psycopg.connect(url) as conn:
        day = load_symbol_day(conn, "AAPL")
        close, doc = conn.execute("SELECT o.close, ds.dealer_metrics_json FROM ohlcv o JOIN tickers t ON t.id = "
                                  "o.ticker_id JOIN daily_snapshots ds ON ds.ticker_id = o.ticker_id AND ds.time = "
                                  "(o.date + time '16:00') AT TIME ZONE 'America/New_York' WHERE t.symbol = 'AAPL' "
                                  "AND o.date = %s", (LAST_DAY,)).fetchone()  # type: ignore[misc]
    assert day.symbol == "AAPL" and day.day == LAST_DAY    # the newest date with a bar by default
    assert day.missing == {}
    assert day.bars.close[-1] == close and day.bars.dates[0] == DAYS[0]    # all 40 bars lie in the window
    assert HOLIDAY not in day.bars.dates
    assert len(day.indicators) == 5 and day.dealer == doc
    assert day.history.dates == DAYS[-2:] and day.history.gex_net[-1] == doc["gex_net"]
    assert day.indicators[LAST_DAY]["sma_20"] == day.technical["trend"]["sma"]["sma_20"]
    assert day.indicators[LAST_DAY]["sma_50"] is None


@pytest.mark.parametrize(("args", "message"), [
    (["ZZZZ"], "error: unknown symbol ZZZZ: not in tickers; run python -m scripts.ingest_tickers"),
    # symbols are case-sensitive everywhere: aapl is not silently AAPL
    (["aapl"], "error: unknown symbol aapl; did you mean AAPL? (symbols are case-sensitive)"),
    # the day's file is loaded (other tickers have bars): a plain backfill skips it, so the hint takes --force
    (["MSFT", "--date", str(GAP[1])], f"error: no OHLCV bar for MSFT on {GAP[1]}: the day's file is loaded "
                                      f"without one (MSFT's bars run from {DAYS[0]} to {LAST_DAY}); to load the "
                                      f"file again: python -m scripts.ingest_ohlcv backfill --start {GAP[1]} "
                                      f"--end {GAP[1]} --force"),
    # a trading day of the window with no bars at all: the plain backfill loads it
    (["MSFT", "--date", "2025-06-02"], "error: no OHLCV bar for MSFT on 2025-06-02: run python -m "
                                      "scripts.ingest_ohlcv backfill --start 2025-06-02 --end 2025-06-02"),
    # a ticker with no bars at all, on a date: it named the span of its bars as 'from None to None'
    (["OLDCO", "--date", str(DAYS[-6])], "error: no OHLCV bars stored for OLDCO: run python -m "
                                         "scripts.ingest_ohlcv base"),
    (["AAPL", "--date", str(HOLIDAY)], f"error: {HOLIDAY} is not an NYSE trading day"),
    (["AAPL", "--date", "2025-12-22"], "error: 2025-12-22 is after today (2025-12-19 by KapMan's clock)"),
    (["A B"], "error: 'A B' is not a ticker symbol\nhint: ASCII letters, digits and '.', starting with a letter; "
              "an index as I:SPX"),
    # past retention: a backfill would load bars the lifecycle drops, so no step is named
    (["AAPL", "--date", "2023-12-19"], "error: 2023-12-19 is before the retention window (bars are kept from "
                                       "2023-12-20, 730 days)"),
])
@pytest.mark.parametrize("module", ["scripts.report", "scripts.show"])
def test_missing_data_is_one_line_naming_the_step(url: str, tmp_path: Path, module: str, args: list[str],
                                                  message: str) -> None:
    proc = cli(module, url, *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing written"


def test_symbol_report_written_twice_is_byte_identical(url: str, tmp_path: Path) -> None:
    first = cli("scripts.report", url, "SPY", "--out", str(tmp_path / "a.html"))
    second = cli("scripts.report", url, "SPY", "--date", str(LAST_DAY), "--out", str(tmp_path / "b.html"))
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout.startswith(f"report: ok · wrote {tmp_path / 'a.html'} (SPY {LAST_DAY}, A3 LIMITED) · ")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert b"A3 status LIMITED: few_eligible_contracts" in (tmp_path / "a.html").read_bytes()


def test_default_output_goes_under_reports(url: str, tmp_path: Path) -> None:
    proc = cli("scripts.report", url, "AAPL", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "ok" and out["pages"] == [f"reports/AAPL-{LAST_DAY}.html"]
    assert (tmp_path / "reports" / f"AAPL-{LAST_DAY}.html").stat().st_size > 1_000_000   # plotly.js inlined


def test_out_may_name_a_directory_and_an_unwritable_path_is_one_line(url: str, tmp_path: Path) -> None:
    assert cli("scripts.report", url, "AAPL", "--out", str(tmp_path)).returncode == 0
    assert (tmp_path / f"AAPL-{LAST_DAY}.html").is_file()
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    proc = cli("scripts.report", url, "AAPL", "--out", str(blocker / "a.html"))
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: cannot write {blocker / 'a.html'}: ")
    assert len(proc.stderr.splitlines()) == 1
    proc = cli("scripts.report", url, "--watchlist", "mvp", "--out", str(blocker))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: --out {blocker} is not a directory; --watchlist writes a directory of "
                                   "pages (index.html and one page per symbol)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"AAPL-{LAST_DAY}.html", "file.txt"]


def test_an_empty_out_is_refused_not_read_as_the_current_directory(url: str, tmp_path: Path) -> None:
    """'--out "$DIR"' with DIR unset wrote the page into the current directory."""
    proc = cli("scripts.report", url, "AAPL", "--out", "", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: --out is empty", "hint: name a file or a directory, or leave --out out for reports/"]
    assert not list(tmp_path.iterdir()), "nothing written"


def test_out_with_a_trailing_slash_is_a_directory_made_if_need_be(url: str, tmp_path: Path) -> None:
    """'--out pages/' wrote a file named 'pages' (the slash was lost on the way to a path)."""
    assert cli("scripts.report", url, "AAPL", "--out", f"{tmp_path / 'pages'}/").returncode == 0
    assert (tmp_path / "pages" / f"AAPL-{LAST_DAY}.html").is_file()
    assert cli("scripts.report", url, "--warehouse", "--out", f"{tmp_path / 'cover' / 'age'}/").returncode == 0
    assert (tmp_path / "cover" / "age" / "warehouse.html").is_file()


def test_watchlist_index_links_reports_and_lists_symbols_without_one(url: str, tmp_path: Path) -> None:
    proc = cli("scripts.report", url, "--watchlist", "mvp", "--out", str(tmp_path / "mvp"), "--json")
    assert proc.returncode == 1, proc.stderr     # partial: some members have no report
    out = json.loads(proc.stdout)
    assert sorted(Path(p).name for p in out["pages"]) == ["AAPL.html", "MSFT.html", "NVDA.html", "SPY.html",
                                                          "index.html"]
    assert out["status"] == "partial" and out["done"] == 4 and out["unit"] == "symbols"
    missing = {f["unit"]: f["reason"] for f in out["failures"]}
    assert sorted(missing) == ["OLDCO", "ZZZZ"]                 # NVDA has bars: a page without its A3 section
    assert missing["OLDCO"] == "no OHLCV bars stored for OLDCO: run python -m scripts.ingest_ohlcv base"
    index = (tmp_path / "mvp" / "index.html").read_text()
    assert '<a href="AAPL.html">AAPL</a>' in index and 'class="sortable"' in index
    assert 'MSFT</a></td><td data-sort="2025-12-19">2025-12-19</td>' in index and ">INVALID<" in index
    assert "unknown symbol ZZZZ" in index and "<script src" not in index
    # plotly.js once beside the pages, each page loading it from there: a 150-symbol report stays small
    library = report_page.plotly_file_name()
    assert [p.name for p in (tmp_path / "mvp").glob("*.js")] == [library]
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "mvp").glob("*.html")}
    for name in ("AAPL.html", "MSFT.html", "NVDA.html", "SPY.html"):
        text = (tmp_path / "mvp" / name).read_text()
        assert f'<script src="{library}"></script>' in text and text.count("<script") == text.count("</script>")
        assert sizes[name] < 60_000, (name, sizes[name])
    assert (tmp_path / "mvp" / library).stat().st_size + 150 * max(sizes.values()) < 25 * 2**20
    empty = cli("scripts.report", url, "--watchlist", "", "--out", str(tmp_path / "empty"))
    assert empty.returncode == 2 and empty.stderr.splitlines() == ["error: --watchlist is empty",
                                                                   "hint: name a watchlist (e.g. mvp)"]
    unknown = cli("scripts.report", url, "--watchlist", "nope", "--out", str(tmp_path / "nope"))
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: watchlist nope has no active symbols (active watchlists: mvp); "
                                      "run python -m scripts.ingest_watchlists")


def test_warehouse_lists_the_gaps_of_the_retention_window(url: str, tmp_path: Path) -> None:
    proc = cli("scripts.report", url, "--warehouse", "--out", str(tmp_path / "w.html"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["gaps"] == {"OHLCV": 0, "option snapshots": 0, "A2": 0, "A3": 0} and out["empty"] == []
    page = (tmp_path / "w.html").read_text()
    # MSFT's missing bar makes its day partial; Thanksgiving is no trading day, so no gap.
    assert f"{GAP[1]}" in page and str(HOLIDAY) not in page.split("Gaps")[1]
    assert f"40 days from {DAYS[0]}" in page
    # 3 of the 5 watchlist symbols with a ticker have snapshots and A3 rows, so both days are partial.
    assert page.count(f"{DAYS[-2]} .. {DAYS[-1]} (2)") == 2
    assert page == (tmp_path / "w.html").read_text()
    assert f'<script src="{report_page.plotly_file_name()}"></script>' in page and len(page) < 200_000
    assert (tmp_path / report_page.plotly_file_name()).is_file()


def test_warehouse_counts_a2_as_status_does_once_the_history_is_owed(url: str, tmp_path: Path) -> None:
    """Once the indicator history was asked for, A2 is owed from the first day with bars: the page's
    gaps and status's a2 check name the same dates (the page had counted from A2's first day, 0 missing)."""
    with psycopg.connect(url, autocommit=True) as conn:
        run = conn.execute("INSERT INTO ingest_runs (run_id, job, started_at, finished_at, status, args) VALUES "
                           "(gen_random_uuid(), 'a2', now(), now(), 'failed', '{\"history\": true}') "
                           "RETURNING run_id").fetchone()[0]  # type: ignore[index]
        try:
            proc = cli("scripts.report", url, "--warehouse", "--out", str(tmp_path / "w.html"), "--json")
            state = cli("scripts.status", url, "--json")
        finally:
            conn.execute("DELETE FROM ingest_runs WHERE run_id = %s", (run,))
        first_a2 = conn.execute("SELECT min((time AT TIME ZONE 'America/New_York')::date) FROM daily_snapshots "
                                "WHERE technical_indicators_json IS NOT NULL").fetchone()[0]  # type: ignore[index]
    assert proc.returncode == 0, proc.stderr
    owed = [d for d in DAYS if d < first_a2]
    assert len(owed) == 35 and json.loads(proc.stdout)["gaps"]["A2"] == len(owed)
    a2 = next(c for c in json.loads(state.stdout)["checks"] if c["area"] == "a2")
    assert a2["verdict"] == "WARN" and a2["details"]["missing"] == [str(d) for d in owed]
    page = (tmp_path / "w.html").read_text()
    assert f"{owed[0]} .. {owed[-1]} ({len(owed)})" in page.split("Gaps")[1]


def test_warehouse_covers_snapshots_taken_before_the_watchlists_were_dated(url: str) -> None:
    """The demo and a repave load their watchlists on the last day, after (or restoring) the week's
    snapshots: those sessions owe nothing by the scope of their day, and status counts them as
    having a snapshot, but the page showed them blank and counted one covered day of five."""
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        conn.execute("UPDATE watchlists SET effective_date = %s", (LAST_DAY,))
        cov = warehouse.coverage(conn, LAST_DAY)
        snapped = status.report(conn, close_of(LAST_DAY)).check("options").details["with_snapshot"]
    days = {d: (n, e) for d, n, e in zip(cov.days, cov.counts["option snapshots"], cov.expected["option snapshots"],
                                         strict=True)}
    assert days[DAYS[-2]] == (3, 3) and days[DAYS[-1]] == (2, 4)   # AAPL, MSFT, SPY; then AAPL and SPY
    assert sum(1 for n in cov.counts["option snapshots"] if n) == snapped == 2
    found = {g.dataset: g for g in warehouse.gaps(cov)}["option snapshots"]
    assert found.missing == [] and found.partial == [(DAYS[-1], DAYS[-1], 1)]


def test_warehouse_of_an_empty_warehouse_says_nothing_is_stored_not_zero_missing(fresh_db: str,
                                                                                 tmp_path: Path) -> None:
    proc = cli("scripts.report", fresh_db, "--warehouse", "--out", str(tmp_path / "w.html"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"report: ok · wrote {tmp_path / 'w.html'} (missing trading days: OHLCV none "
                                  "stored, option snapshots none stored, A2 none stored, A3 none stored) · ")


def test_show_prints_the_key_values(url: str) -> None:
    proc = cli("scripts.show", url, "AAPL")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"AAPL {LAST_DAY}" and "  A3" in lines
    assert any(line.split() == ["status", "FULL"] for line in lines)
    data = json.loads(cli("scripts.show", url, "AAPL", "--json").stdout)
    # keyed by where each value is stored, not by its display label
    assert data["date"] == str(LAST_DAY) and data["values"]["dealer_metrics_json.status"] == "FULL"
    assert isinstance(data["values"]["ohlcv.close"], float)
    assert date.fromisoformat(data["values"]["ohlcv.date"]) == LAST_DAY
    with psycopg.connect(url) as conn:
        ta = conn.execute("SELECT technical_indicators_json FROM daily_snapshots s JOIN tickers t ON t.id = "
                          "s.ticker_id WHERE t.symbol = 'AAPL' ORDER BY time DESC LIMIT 1").fetchone()[0]  # type: ignore[index]
    assert data["values"]["technical_indicators_json.momentum.rsi.rsi"] == ta["momentum"]["rsi"]["rsi"]
    assert data["missing"] == {}


@pytest.mark.parametrize("module", ["scripts.report", "scripts.show"])
def test_any_ticker_with_bars_omits_each_section_it_lacks(url: str, tmp_path: Path, module: str) -> None:
    """NVDA has no A3; AAPL six days back has no A2 or A3: each missing section is one line naming the step."""
    nvda = cli(module, url, "NVDA", "--out" if module == "scripts.report" else "--json",
               *([str(tmp_path / "nvda.html")] if module == "scripts.report" else []))
    assert nvda.returncode == 0, nvda.stderr
    # NVDA has no option snapshot: the options step takes one only on its own day, so it is not named as the
    # way to fill a past date's A3 (nor A3 itself, which would find no chain)
    a3_line = (f"A3 dealer metrics and options: none stored for NVDA on {LAST_DAY}; no option snapshot of NVDA on "
               f"{LAST_DAY} is stored (python -m scripts.ingest_options takes one on its own day, for watchlist "
               "symbols; an archived one comes back with python -m scripts.restore_options_archive)")
    early = DAYS[-6]
    a2_line = (f"A2 indicators: none stored for AAPL on {early}; python -m scripts.run_a2_local_ta --date {early} "
               f"--symbols AAPL fills them")
    if module == "scripts.show":
        data = json.loads(nvda.stdout)
        assert data["missing"] == {"A3": a3_line}
        assert "dealer_metrics_json.gex_net" not in data["values"] and "ohlcv.close" in data["values"]
        text = cli(module, url, "AAPL", "--date", str(early)).stdout.splitlines()
        assert "  A2" not in text and "  A3" not in text and f"  {a2_line}" in text
        return
    page = (tmp_path / "nvda.html").read_text()
    assert a3_line in page and 'id="gex-strike"' not in page and 'id="price"' in page
    early_page = cli(module, url, "AAPL", "--date", str(early), "--out", str(tmp_path / "early.html"))
    assert early_page.returncode == 0, early_page.stderr
    assert a2_line in (tmp_path / "early.html").read_text()


def test_a_day_whose_option_snapshot_is_stored_names_a3_to_fill_it(url: str) -> None:
    with psycopg.connect(url) as conn:   # the change is rolled back: the module's database stays as hydrated
        conn.execute("UPDATE daily_snapshots SET dealer_metrics_json = NULL WHERE time = %s AND ticker_id = "
                     "(SELECT id FROM tickers WHERE symbol = 'AAPL')", (close_of(LAST_DAY),))
        day = load_symbol_day(conn, "AAPL", LAST_DAY)
        conn.rollback()
    assert day.missing == {"A3": f"A3 dealer metrics and options: none stored for AAPL on {LAST_DAY}; its option "
                                 f"snapshot is stored; python -m scripts.run_a3_dealer_metrics --date {LAST_DAY} "
                                 "--symbols AAPL fills them"}


@pytest.mark.parametrize(("day", "message"), [
    (str(HOLIDAY), f"error: {HOLIDAY} is not an NYSE trading day"),
    ("2025-12-22", "error: 2025-12-22 is after today (2025-12-19 by KapMan's clock)"),
])
def test_a_watchlist_report_of_a_date_no_member_can_have_is_refused_once(url: str, tmp_path: Path, day: str,
                                                                         message: str) -> None:
    """It wrote an index of no reports, with every member failed for the same date, exit 2."""
    proc = cli("scripts.report", url, "--watchlist", "mvp", "--date", day, "--out", str(tmp_path / "mvp"))
    assert proc.returncode == 2 and proc.stderr.strip() == message and proc.stdout == ""
    assert not (tmp_path / "mvp").exists()


def test_show_json_gives_a3_status_and_reason_as_stored(url: str) -> None:
    """The table shows 'LIMITED (few_eligible_contracts)'; --json gave that text as the stored status."""
    values = json.loads(cli("scripts.show", url, "SPY", "--json").stdout)["values"]
    assert (values["dealer_metrics_json.status"], values["dealer_metrics_json.status_reason"]) == (
        "LIMITED", "few_eligible_contracts")
    text = cli("scripts.show", url, "SPY").stdout.splitlines()
    assert any(line.split() == ["status", "LIMITED", "(few_eligible_contracts)"] for line in text)
    full = json.loads(cli("scripts.show", url, "AAPL", "--json").stdout)["values"]
    assert (full["dealer_metrics_json.status"], full["dealer_metrics_json.status_reason"]) == ("FULL", None)


def test_kapman_show_is_scripts_show(url: str) -> None:
    console = "import sys; from kapman.console import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", console, "show", "SPY", "--db-url", url], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == cli("scripts.show", url, "SPY").stdout
    assert any(line.split()[:2] == ["status", "LIMITED"] for line in proc.stdout.splitlines())


def test_candles_are_split_adjusted_as_of_the_report_date(url: str) -> None:
    """A 2-for-1 split inside the window (the bars as traded show it) halves the earlier candles and
    doubles their volume, as A2 adjusts, giving back the series as if never split; a split after the
    report date, or a record the prices do not show, leaves the page alone."""
    split_day, later, bogus = DAYS[-10], date(2026, 1, 5), DAYS[-5]
    with psycopg.connect(url) as conn:
        raw = load_symbol_day(conn, "AAPL", LAST_DAY).bars
        conn.execute("UPDATE ohlcv o SET open = open * 2, high = high * 2, low = low * 2, close = close * 2, "
                     "volume = volume / 2 FROM tickers t WHERE t.id = o.ticker_id AND t.symbol = 'AAPL' "
                     "AND o.date < %s", (split_day,))
        conn.execute("INSERT INTO splits (ticker, execution_date, split_from, split_to) VALUES "
                     "('AAPL', %s, 1, 2), ('AAPL', %s, 1, 10), ('AAPL', %s, 1, 3)", (split_day, later, bogus))
        adjusted = load_symbol_day(conn, "AAPL", LAST_DAY).bars
        conn.rollback()
    assert adjusted.dates == raw.dates
    for i in range(len(raw.dates)):   # the doubled candles before the split halved back, the rest as read
        assert adjusted.close[i] == pytest.approx(float(raw.close[i]), rel=1e-12)
        assert adjusted.low[i] == pytest.approx(float(raw.low[i]), rel=1e-12)
        assert adjusted.volume[i] == pytest.approx(float(raw.volume[i]), rel=1e-12)
