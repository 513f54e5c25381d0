"""OHLCV against what real flat files and real operation do: missing days, republished files,
ambiguous symbols, per-object 403s, dropped chunks, the retention cutoff, the free-plan REST path."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from kapman import clock
from kapman.errors import AuthError, UsageError
from kapman.ingest.daybars import parse_day_file
from kapman.ingest.ohlcv import OhlcvDetails, OhlcvParams, ingest
from kapman.providers.flatfiles import FlatFileSource, MirrorSource, S3Source
from kapman.providers.grouped import GroupedDailySource
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market
from kapman.sandbox.mirror import write_mirror, write_preliminary
from kapman.sandbox.rest import SandboxRestServer
from kapman.sandbox.s3 import SandboxS3
from kapman.step import Outcome, StepResult
from tests.support.s3source import sandbox_s3_source

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("market_clock")]
PREFIX = "us_stocks_sip/day_aggs_v1"
END = date(2025, 12, 19)
HALT_DAY = date(2025, 12, 17)   # FURE has no bar that day in the test market (a halt)


def load(db: psycopg.Connection, source: FlatFileSource, mode: str = "backfill", **kw: object) -> StepResult:
    result = StepResult("ohlcv", unit=source.unit, details=OhlcvDetails())
    ingest(db, source, OhlcvParams(mode=mode, **kw), result)  # type: ignore[arg-type]
    return result


def bar(db: psycopg.Connection, symbol: str, day: date) -> tuple | None:
    return db.execute("SELECT o.open, o.high, o.low, o.close, o.volume, o.transactions FROM ohlcv o "
                      "JOIN tickers t ON t.id = o.ticker_id WHERE t.symbol = %s AND o.date = %s",
                      (symbol, day)).fetchone()


def day_count(db: psycopg.Connection, day: date) -> int:
    return db.execute("SELECT count(*) FROM ohlcv WHERE date = %s", (day,)).fetchone()[0]  # type: ignore[index]


@pytest.fixture
def s3(market: Market) -> Iterator[tuple[SandboxS3, S3Source]]:
    days = [d for d in market.trading_days if d >= date(2025, 12, 8)]
    with SandboxS3(market, days=days) as server:
        source = sandbox_s3_source(server)
        yield server, source


# -- #14.3 missing trading days ------------------------------------------------------------------

def test_a_missing_trading_day_is_reported_and_fails_the_run(reference_db: psycopg.Connection, market: Market,
                                                             mirror_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(mirror_dir, tmp_path / "m")
    gone = date(2025, 12, 10)
    (tmp_path / "m" / market.flat_file_key(gone)).unlink()
    result = load(reference_db, MirrorSource(tmp_path / "m", PREFIX), start=date(2025, 12, 1), end=END)
    assert result.details.files_loaded == 14 and result.details.missing_days == ["2025-12-10"]
    assert [(f.unit, f.reason) for f in result.failures] == [
        ("2025-12-10", "no flat file for this trading day, due by 2025-12-11 11:00 New York")]
    assert result.outcome is Outcome.PARTIAL and result.exit_code == 1
    assert day_count(reference_db, gone) == 0 and day_count(reference_db, date(2025, 12, 11)) > 0
    # Weekends and Thanksgiving are not trading days: no file expected.
    thanksgiving = load(reference_db, MirrorSource(tmp_path / "m", PREFIX), start=date(2025, 11, 26),
                        end=date(2025, 11, 30))
    assert not thanksgiving.failures and thanksgiving.details.files_loaded == 2


def test_base_over_days_the_vendor_never_had_reports_them(reference_db: psycopg.Connection, market: Market,
                                                         mirror_dir: Path) -> None:
    result = load(reference_db, MirrorSource(mirror_dir, PREFIX), "base", days=730, as_of=END)
    missing = result.details.missing_days
    assert missing[0] == "2023-12-20" and missing[-1] == str(market.trading_days[0].replace(day=20))
    assert result.details.files_loaded == len(market.trading_days) and result.exit_code == 1


def test_todays_file_before_its_publication_time_is_pending_not_missing(
        reference_db: psycopg.Connection, market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mirror(market, tmp_path, days=[d for d in market.trading_days if date(2025, 12, 11) <= d < END])
    source = MirrorSource(tmp_path, PREFIX)
    load(reference_db, source, start=date(2025, 12, 11), end=date(2025, 12, 18))
    result = load(reference_db, source, "incremental")     # KAPMAN_NOW: 2025-12-19 16:00 New York
    assert not result.failures and result.exit_code == 0
    assert result.details.pending_days == ["2025-12-19"]
    assert "2025-12-19: not published yet (due by 2025-12-20 11:00 New York)" in result.notes
    assert "incremental 2025-12-19" in result.headline and "up to date" in result.headline
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T16:00:00Z")   # 11:00 New York the next day
    late = load(reference_db, source, "incremental")
    assert late.details.missing_days == ["2025-12-19"] and late.exit_code == 1


def test_incremental_when_up_to_date_says_so_without_a_reversed_range(
        reference_db: psycopg.Connection, mirror_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = MirrorSource(mirror_dir, PREFIX)
    load(reference_db, source, start=date(2025, 12, 8), end=END)
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T15:00:00Z")   # Saturday
    result = load(reference_db, source, "incremental")
    assert result.exit_code == 0 and not result.failures
    text = result.summary()
    assert "up to date" in text and "2025-12-20..2025-12-20" not in text
    assert result.details.files_unchanged == 5       # the trailing re-check of 13-19 December
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T22:00:00Z")   # the same evening: nothing after the 19th
    same_day = load(reference_db, source, "incremental")
    assert "2025-12-20..2025-12-19" not in same_day.summary() and "nothing after 2025-12-19" in same_day.headline
    assert same_day.details.start is None and same_day.exit_code == 0


# -- #14.4 / #15.4 republished files ------------------------------------------------------------

def test_a_corrected_file_the_next_morning_is_found_by_the_trailing_recheck(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, source = s3
    server.publish_preliminary(HALT_DAY)
    first = load(reference_db, source, start=date(2025, 12, 8), end=HALT_DAY)
    assert first.details.files_loaded == 8
    prelim = market.preliminary_bars(HALT_DAY).set_index("ticker")
    assert bar(reference_db, "FURE", HALT_DAY) is not None          # the stale row of the halted ticker
    assert bar(reference_db, "AAPL", HALT_DAY)[3] == prelim.loc["AAPL", "close"]  # type: ignore[index]
    final_etag = server.publish_final(HALT_DAY).strip('"')
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T17:00:00Z")
    result = load(reference_db, source, "incremental", end=date(2025, 12, 18))
    assert result.details.republished == [market.flat_file_key(HALT_DAY)]
    assert f"{HALT_DAY}: republished (new ETag {final_etag}); reloaded" in result.notes
    assert result.details.files_loaded == 2           # the corrected 17th and the new 18th
    assert result.removed == 1 and result.details.rows_removed == 1
    final = market.bars(HALT_DAY).set_index("ticker")
    assert bar(reference_db, "FURE", HALT_DAY) is None
    assert bar(reference_db, "AAPL", HALT_DAY)[3] == final.loc["AAPL", "close"]  # type: ignore[index]
    symbols = {r[0] for r in reference_db.execute("SELECT symbol FROM tickers").fetchall()}
    assert day_count(reference_db, HALT_DAY) == int(final.index.isin(symbols).sum())
    etag, rows_loaded = reference_db.execute("SELECT etag, rows_loaded FROM ingest_files WHERE trading_date = %s",
                                             (HALT_DAY,)).fetchone()  # type: ignore[misc]
    assert etag == final_etag and rows_loaded == day_count(reference_db, HALT_DAY)


def test_recheck_days_zero_does_not_list_loaded_days(reference_db: psycopg.Connection, market: Market,
                                                     s3: tuple[SandboxS3, S3Source]) -> None:
    server, source = s3
    server.publish_preliminary(HALT_DAY)
    load(reference_db, source, start=date(2025, 12, 8), end=HALT_DAY)
    server.publish_final(HALT_DAY)
    result = load(reference_db, source, "incremental", recheck_days=0)
    assert result.details.republished == [] and bar(reference_db, "FURE", HALT_DAY) is not None


def test_a_mirror_republished_without_a_ticker_deletes_its_row(reference_db: psycopg.Connection, market: Market,
                                                               tmp_path: Path) -> None:
    write_preliminary(market, tmp_path, HALT_DAY)
    source = MirrorSource(tmp_path, PREFIX)
    load(reference_db, source, start=HALT_DAY, end=HALT_DAY)
    before = day_count(reference_db, HALT_DAY)
    write_mirror(market, tmp_path, days=[HALT_DAY])
    result = load(reference_db, source, start=HALT_DAY, end=HALT_DAY)
    assert result.removed == 1 and day_count(reference_db, HALT_DAY) == before - 1
    assert f"{HALT_DAY}: 1 row(s) of tickers no longer in the file removed" in result.notes


# -- #14.11 / #15.1 two rows for one symbol, case-sensitive symbols ------------------------------

def test_a_symbol_twice_in_a_file_is_not_stored_for_that_day(reference_db: psycopg.Connection, market: Market,
                                                            tmp_path: Path) -> None:
    write_mirror(market, tmp_path, days=[END])
    path = tmp_path / market.flat_file_key(END)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    msft = next(r for r in lines if r.startswith("MSFT,"))
    fields = msft.split(",")
    fields[3] = fields[4]                    # another close, still inside [low, high]
    lines.append(",".join(fields))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    result = load(reference_db, MirrorSource(tmp_path, PREFIX), start=END, end=END)
    assert bar(reference_db, "MSFT", END) is None
    assert bar(reference_db, "AAPL", END) is not None and not result.failures
    assert result.details.ambiguous_symbols == {str(END): ["MSFT"]}
    assert result.details.rejected_by_reason == {"duplicate_symbol": 2}
    note = next(n for n in result.notes if n.startswith(f"{END}: MSFT appears 2 times"))
    assert note.count("line ") == 2 and f"c={float(fields[3]):g}" in note


# -- #15.5 403 on chosen objects ------------------------------------------------------------------

def test_a_403_on_one_object_fails_that_file_only(reference_db: psycopg.Connection, market: Market,
                                                  s3: tuple[SandboxS3, S3Source]) -> None:
    server, source = s3
    server.forbid([date(2025, 12, 16)])
    result = load(reference_db, source, start=date(2025, 12, 8), end=END)
    assert result.details.files_loaded == 9 and result.exit_code == 1
    (failure,) = result.failures
    assert failure.unit == market.flat_file_key(date(2025, 12, 16))
    assert "403 AccessDenied" in failure.reason and "outside the plan's history" in failure.reason
    assert day_count(reference_db, date(2025, 12, 16)) == 0 and day_count(reference_db, END) > 0
    server.allow()
    again = load(reference_db, source, start=date(2025, 12, 8), end=END)
    assert again.details.files_loaded == 1 and again.exit_code == 0


def test_a_403_on_every_file_or_on_the_listing_is_a_credentials_error(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source]) -> None:
    server, source = s3
    server.forbid(market.trading_days)
    with pytest.raises(AuthError, match="refused every one of the 10 file") as every:
        load(reference_db, source, start=date(2025, 12, 8), end=END)
    assert "FLATFILES_ACCESS_KEY_ID" in (every.value.hint or "")
    server.allow()
    server.forbid_listing()
    with pytest.raises(AuthError, match="S3 refused access") as listing:
        load(reference_db, source, start=date(2025, 12, 8), end=END)
    assert "FLATFILES_ACCESS_KEY_ID" in (listing.value.hint or "")
    assert reference_db.execute("SELECT count(*) FROM ohlcv").fetchone()[0] == 0


# -- #13.2 retention and the ledger agree --------------------------------------------------------

def test_a_day_whose_rows_are_gone_is_reloaded_and_reported(reference_db: psycopg.Connection,
                                                            mirror_dir: Path) -> None:
    source = MirrorSource(mirror_dir, PREFIX)
    load(reference_db, source, start=date(2025, 12, 1), end=END)
    expected = day_count(reference_db, date(2025, 12, 3))
    # As when chunks are dropped by a policy: the rows go, the ledger is not told.
    reference_db.execute("DELETE FROM ohlcv WHERE date IN ('2025-12-03', '2025-12-04')")
    result = load(reference_db, source, start=date(2025, 12, 1), end=END)
    assert result.details.ledger_reconciled == ["2025-12-03", "2025-12-04"]
    assert any(n.startswith("2 day(s) recorded as loaded had no rows in ohlcv") and
               "2025-12-03..2025-12-04" in n for n in result.notes)
    assert result.details.files_loaded == 2 and day_count(reference_db, date(2025, 12, 3)) == expected


def test_dates_older_than_the_retention_cutoff_are_refused(reference_db: psycopg.Connection, mirror_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    source = MirrorSource(mirror_dir, PREFIX)
    monkeypatch.setenv("KAPMAN_NOW", "2027-12-10")   # cutoff 2025-12-10
    with pytest.raises(UsageError, match="older than the retention cutoff") as info:
        load(reference_db, source, start=date(2025, 12, 1), end=date(2025, 12, 5))
    assert "730 days by KapMan's clock (cutoff 2025-12-10)" in info.value.message
    assert reference_db.execute("SELECT count(*) FROM ohlcv").fetchone()[0] == 0
    partly = load(reference_db, source, start=date(2025, 12, 1), end=END)
    assert "dates 2025-12-01..2025-12-09 refused: retention keeps 730 days" in partly.notes[0]
    dates = [r[0] for r in reference_db.execute("SELECT DISTINCT date FROM ohlcv ORDER BY 1").fetchall()]
    assert dates[0] == date(2025, 12, 10) and len(dates) == 8
    assert reference_db.execute("SELECT min(trading_date) FROM ingest_files").fetchone()[0] == date(2025, 12, 10)


def test_retention_runs_only_after_a_run_without_failures(reference_db: psycopg.Connection, market: Market,
                                                          mirror_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, license_name: str) -> None:
    source = MirrorSource(mirror_dir, PREFIX)
    load(reference_db, source, start=market.trading_days[0], end=date(2025, 9, 30), retention=False)
    loaded = reference_db.execute("SELECT count(*) FROM ingest_files").fetchone()[0]
    monkeypatch.setenv("KAPMAN_NOW", "2027-10-15")   # cutoff 2025-10-15: the August/September chunks expire
    # ... on a day that has come: retention never counts from a clock ahead of real time, so real time
    # is two days later here (the clock stays frozen away from it, as a replayed day is)
    monkeypatch.setattr(clock, "real_now", lambda: datetime(2027, 10, 17, 21, tzinfo=UTC))
    shutil.copytree(mirror_dir, tmp_path / "m")
    (tmp_path / "m" / market.flat_file_key(date(2025, 11, 5))).unlink()
    failing = load(reference_db, MirrorSource(tmp_path / "m", PREFIX), start=date(2025, 11, 3), end=date(2025, 11, 7))
    assert failing.exit_code == 1 and failing.details.retention.startswith("retention: not run")
    assert reference_db.execute("SELECT count(*) FROM ingest_files WHERE trading_date < '2025-10-01'").fetchone()[0] \
        == loaded
    clean = load(reference_db, source, start=date(2025, 11, 10), end=date(2025, 11, 14))
    # the Apache edition has no policies; the community edition's are paused on this frozen clock
    enforced = ("KapMan enforced 730 days on its clock" if license_name == "timescale"
                else "enforced by KapMan (730 days)")
    assert clean.exit_code == 0 and enforced in clean.details.retention
    gone = reference_db.execute("SELECT count(*) FROM ohlcv WHERE date < '2025-09-01'").fetchone()[0]
    assert gone == 0
    # Every file of a dropped day left the ledger in the same run.
    orphans = reference_db.execute("""SELECT count(*) FROM ingest_files f WHERE NOT EXISTS
                                      (SELECT 1 FROM ohlcv o WHERE o.date = f.trading_date)""").fetchone()[0]
    removed = clean.details.retention_ledger_removed
    assert orphans == 0 and removed and max(removed) < "2025-10-15"
    assert reference_db.execute("SELECT count(*) FROM ingest_files").fetchone()[0] == loaded + 4 + 5 - len(removed)


# -- #15.6 the free-plan REST path ---------------------------------------------------------------

@pytest.fixture
def grouped(rest: SandboxRestServer) -> Iterator[GroupedDailySource]:
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000, max_retries=2, sleep=lambda s: None)
    source = GroupedDailySource(PolygonClient(http))
    yield source
    source.close()


def test_rest_grouped_daily_stores_what_the_flat_files_store(reference_db: psycopg.Connection, market: Market,
                                                             mirror_dir: Path, rest: SandboxRestServer,
                                                             grouped: GroupedDailySource, tmp_path: Path) -> None:
    days = (date(2025, 12, 15), END)
    rest.reset_counts()
    result = load(reference_db, grouped, start=days[0], end=days[1])
    assert result.unit == "dates" and result.details.files_loaded == 5 and result.exit_code == 0
    assert rest.request_count("/v2/aggs/grouped") == 5
    via_rest = reference_db.execute("SELECT ticker_id, date, open, high, low, close, volume, transactions "
                                    "FROM ohlcv ORDER BY 1, 2").fetchall()
    keys = [r[0] for r in reference_db.execute("SELECT key FROM ingest_files WHERE source LIKE 'rest:%' "
                                               "ORDER BY trading_date").fetchall()]
    assert keys[0] == "rest/v2/aggs/grouped/locale/us/market/stocks/2025-12-15" and len(keys) == 5
    again = load(reference_db, grouped, start=days[0], end=days[1])
    assert again.details.files_unchanged == 5 and rest.request_count("/v2/aggs/grouped") == 5
    # The same dates from the flat files: the same stored values (unadjusted, like the files).
    reference_db.execute("TRUNCATE ohlcv, ingest_files")
    load(reference_db, MirrorSource(mirror_dir, PREFIX), start=days[0], end=days[1])
    via_files = reference_db.execute("SELECT ticker_id, date, open, high, low, close, volume, transactions "
                                     "FROM ohlcv ORDER BY 1, 2").fetchall()
    assert via_rest == via_files


def test_vwap_from_grouped_daily_and_null_from_day_files(reference_db: psycopg.Connection, market: Market,
                                                         mirror_dir: Path, grouped: GroupedDailySource) -> None:
    days = (date(2025, 12, 17), END)
    assert load(reference_db, grouped, start=days[0], end=days[1]).exit_code == 0
    stored = {(s, d): v for s, d, v in reference_db.execute(
        "SELECT t.symbol, o.date, o.vwap FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id").fetchall()}
    want = {(r["T"], d): r["vw"] for d in market.trading_days if days[0] <= d <= days[1]
            for r in market.grouped_daily(d, adjusted=False) if (r["T"], d) in stored}
    assert len(want) == len(stored) > 300 and stored == want
    reference_db.execute("TRUNCATE ohlcv, ingest_files")
    assert load(reference_db, MirrorSource(mirror_dir, PREFIX), start=days[0], end=days[1]).exit_code == 0
    counts = reference_db.execute("SELECT count(*), count(vwap) FROM ohlcv").fetchone()
    assert counts[0] == len(stored) and counts[1] == 0     # the day files have no VWAP column


def test_rest_source_with_the_free_plan_rate_shows_an_eta(rest: SandboxRestServer) -> None:
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=5 / 60, max_retries=0)
    source = GroupedDailySource(PolygonClient(http))
    from kapman.ingest.ohlcv import _progress_title
    from kapman.ingest.ohlcv_plan import backfill_window
    assert source.requests_per_minute == pytest.approx(5.0)
    title = _progress_title(backfill_window(date(2024, 1, 1), END), source, 502)
    assert title.endswith("(502 requests at 5/min: about 100 min)")
    source.close()


def test_rows_without_transactions_are_stored_with_null(reference_db: psycopg.Connection, market: Market,
                                                        tmp_path: Path) -> None:
    write_mirror(market, tmp_path, days=[END])
    path = tmp_path / market.flat_file_key(END)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    i = next(n for n, r in enumerate(lines) if r.startswith("MSFT,"))
    lines[i] = lines[i].rsplit(",", 1)[0] + ","
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    result = load(reference_db, MirrorSource(tmp_path, PREFIX), start=END, end=END)
    final = market.bars(END).set_index("ticker")
    msft, aapl = bar(reference_db, "MSFT", END), bar(reference_db, "AAPL", END)
    assert msft is not None and msft[5] is None and msft[3] == final.loc["MSFT", "close"]
    assert aapl is not None and aapl[5] == final.loc["AAPL", "transactions"]
    assert result.details.rows_inserted == day_count(reference_db, END)


def test_a_lower_case_class_symbol_is_not_merged_into_its_namesake(reference_db: psycopg.Connection,
                                                                   market: Market, tmp_path: Path) -> None:
    write_mirror(market, tmp_path, days=[END])
    path = tmp_path / market.flat_file_key(END)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    aapl = next(r for r in lines if r.startswith("AAPL,")).split(",")
    aapl[0], aapl[3] = "AAPl", aapl[4]       # a class of AAPL in the CQS convention, another close
    lines.append(",".join(aapl))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    result = load(reference_db, MirrorSource(tmp_path, PREFIX), start=END, end=END)
    final = market.bars(END).set_index("ticker")
    assert bar(reference_db, "AAPL", END)[3] == final.loc["AAPL", "close"]  # type: ignore[index]
    assert result.details.rejected_by_reason == {} and result.details.ambiguous_symbols == {}
    known = {r[0] for r in reference_db.execute("SELECT symbol FROM tickers").fetchall()}
    # Stored under its own ticker when the reference list has it, else counted as unknown.
    assert day_count(reference_db, END) == int(final.index.isin(known).sum()) + ("AAPl" in known)
    assert result.details.unknown_rows == int((~final.index.isin(known)).sum()) + ("AAPl" not in known)


# -- hostile flat files (issue 26): the sandbox bucket's "tamper" action ---------------------------

def _tampered(server: SandboxS3, source: S3Source, db: psycopg.Connection, **edits: object) -> StepResult:
    server.apply({"action": "tamper", "date": END.isoformat(), **edits})
    return load(db, source, start=END, end=END)


@pytest.mark.parametrize("close", ["inf", "1e308", "1e400"])
def test_an_infinite_or_huge_close_rejects_that_row_and_keeps_the_stored_one(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source], close: str) -> None:
    server, source = s3
    load(reference_db, source, start=END, end=END)
    stored, count = bar(reference_db, "MSFT", END), day_count(reference_db, END)
    result = _tampered(server, source, reference_db, rows={"MSFT": {"close": close}})
    reason = "price_out_of_range" if close == "1e308" else "non_finite"
    assert result.details.rejected_by_reason == {reason: 1} and not result.failures
    assert any("MSFT has " in s for s in result.details.reject_samples[reason])
    assert bar(reference_db, "MSFT", END) == stored and day_count(reference_db, END) == count
    assert result.removed == 0


def test_rows_of_another_day_are_rejected_and_named(reference_db: psycopg.Connection, market: Market,
                                                     s3: tuple[SandboxS3, S3Source]) -> None:
    from kapman.sandbox.flatfiles import window_start_ns
    server, source = s3
    result = _tampered(server, source, reference_db,
                       rows={"AAPL": {"window_start": str(window_start_ns(date(2025, 12, 18)))}})
    assert result.details.rejected_by_reason == {"other_day": 1}
    assert bar(reference_db, "AAPL", END) is None and bar(reference_db, "MSFT", END) is not None
    (sample,) = result.details.reject_samples["other_day"]
    assert "AAPL has a window_start outside the file's day 2025-12-19" in sample


def test_a_junk_ticker_and_a_count_past_bigint_are_rejected_and_the_rest_stored(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source]) -> None:
    """A NUL ticker used to be kept as an unknown symbol (whose sample the run ledger's jsonb then
    refused), and 2**63-1 transactions stored as -2**63."""
    server, source = s3
    clean = parse_day_file(market.flat_file_csv_gz(END), "k", END)
    result = _tampered(server, source, reference_db,
                       rows={"MSFT": {"ticker": "MS\x00FT"}, "AAPL": {"transactions": str(2**63 - 1)}})
    assert result.details.rejected_by_reason == {"bad_symbol": 1, "bad_transactions": 1} and not result.failures
    (junk,) = result.details.reject_samples["bad_symbol"]
    assert junk.endswith("'MS\\x00FT' is not a symbol (a letter, then letters, digits or '.', at most 20; "
                         "or an index's I: before one)")
    assert bar(reference_db, "AAPL", END) is None and bar(reference_db, "MSFT", END) is None
    assert day_count(reference_db, END) == len(clean.symbols) - 2 - result.details.unknown_rows
    i = clean.symbols.tolist().index("NVDA")
    assert bar(reference_db, "NVDA", END) == (clean.open[i], clean.high[i], clean.low[i], clean.close[i],
                                              clean.volume[i], int(clean.transactions[i]))
    assert reference_db.execute("SELECT min(transactions) FROM ohlcv WHERE date = %s", (END,)).fetchone()[0] >= 0
    summary = json.dumps(result.as_dict(), default=str)      # as the run ledger stores it
    assert reference_db.execute("SELECT %s::jsonb ->> 'step'", (summary,)).fetchone() == ("ohlcv",)


def test_an_extra_column_is_ignored_and_a_missing_transactions_column_is_null(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source]) -> None:
    server, source = s3
    key = market.flat_file_key(END)
    extra = _tampered(server, source, reference_db, add_columns={"vwap": "12.5"})
    assert extra.details.files_loaded == 1 and extra.rejected == 0 and not extra.failures
    assert f"{key}: column(s) vwap not known; ignored" in extra.notes
    assert bar(reference_db, "AAPL", END)[5] is not None  # type: ignore[index]
    no_tx = _tampered(server, source, reference_db, drop_columns=["transactions"])
    assert no_tx.details.files_loaded == 1 and no_tx.rejected == 0
    assert bar(reference_db, "AAPL", END)[5] is None  # type: ignore[index]
    assert f"{key}: no transactions column; stored as NULL" in no_tx.notes


def test_a_missing_required_column_fails_the_file_and_it_is_not_recorded(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source]) -> None:
    server, source = s3
    key = market.flat_file_key(END)
    result = _tampered(server, source, reference_db, drop_columns=["close"])
    (failure,) = result.failures
    assert failure.unit == key and failure.reason.startswith("line 1: header lacks the required column(s) close")
    assert key not in failure.reason  # the key once, as the unit
    assert reference_db.execute("SELECT count(*) FROM ingest_files WHERE key = %s", (key,)).fetchone() == (0,)
    server.apply({"action": "final", "date": END.isoformat()})
    assert load(reference_db, source, start=END, end=END).details.files_loaded == 1


def test_a_file_whose_every_row_is_rejected_is_not_recorded_and_keeps_the_day(
        reference_db: psycopg.Connection, market: Market, s3: tuple[SandboxS3, S3Source]) -> None:
    server, source = s3
    load(reference_db, source, start=END, end=END)
    count = day_count(reference_db, END)
    ledger = "SELECT etag, rows_loaded FROM ingest_files WHERE key = %s"
    before = reference_db.execute(ledger, (market.flat_file_key(END),)).fetchone()
    lines = gzip.decompress(market.flat_file_csv_gz(END)).decode().splitlines()
    everyone = {line.split(",")[0]: {"high": "0.0001"} for line in lines[1:]}
    result = _tampered(server, source, reference_db, rows=everyone)
    (failure,) = result.failures
    assert "rows was rejected" in failure.reason and "not recorded as loaded" in failure.reason
    assert day_count(reference_db, END) == count
    # The ledger still holds the earlier load, not this file with 0 rows: a rerun tries it again.
    assert reference_db.execute(ledger, (market.flat_file_key(END),)).fetchone() == before
    assert before[1] == count and result.exit_code == 2  # type: ignore[index]


def test_rest_grouped_daily_retries_a_body_that_is_not_json(reference_db: psycopg.Connection, rest: SandboxRestServer,
                                                           grouped: GroupedDailySource) -> None:
    """A 200 that is not JSON used to fail the date at once as an unreadable file."""
    rest.faults.body("<html>busy</html>", path_prefix="/v2/aggs/grouped")
    result = load(reference_db, grouped, start=END, end=END)
    assert result.details.files_loaded == 1 and result.exit_code == 0 and not result.failures
    assert day_count(reference_db, END) > 0


def test_a_file_of_only_a_header_fails_and_keeps_the_day(reference_db: psycopg.Connection, market: Market,
                                                         tmp_path: Path) -> None:
    """It used to be recorded as loaded with 0 rows, and every stored row of the day was removed
    as 'no longer in the file'."""
    write_mirror(market, tmp_path, days=[END])
    source = MirrorSource(tmp_path, PREFIX)
    load(reference_db, source, start=END, end=END)
    count = day_count(reference_db, END)
    ledger = "SELECT etag, rows_loaded FROM ingest_files WHERE key = %s"
    key = market.flat_file_key(END)
    before = reference_db.execute(ledger, (key,)).fetchone()
    (tmp_path / key).write_bytes(gzip.compress(b"ticker,volume,open,close,high,low,window_start,transactions\r\n"))
    result = load(reference_db, source, start=END, end=END)
    (failure,) = result.failures
    assert failure.unit == key and failure.reason == ("no rows, only a header; not recorded as loaded, "
                                                      "the day's stored rows kept")
    assert result.exit_code == 2 and result.removed == 0 and count > 100
    assert day_count(reference_db, END) == count and reference_db.execute(ledger, (key,)).fetchone() == before


def test_a_file_of_no_known_ticker_fails_and_keeps_the_day(reference_db: psycopg.Connection, market: Market,
                                                           tmp_path: Path) -> None:
    """Every symbol lower-cased (valid symbols, none a ticker) used to remove the whole day."""
    write_mirror(market, tmp_path, days=[END])
    source = MirrorSource(tmp_path, PREFIX)
    load(reference_db, source, start=END, end=END)
    count = day_count(reference_db, END)
    path = tmp_path / market.flat_file_key(END)
    header, *rows = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress("\n".join([header, *(r.lower() for r in rows)]).encode()))
    result = load(reference_db, source, start=END, end=END)
    (failure,) = result.failures
    assert failure.reason.startswith(f"none of its {len(rows)} symbols is a known ticker (e.g. ")
    assert failure.reason.endswith("not recorded as loaded, the day's stored rows kept")
    assert result.exit_code == 2 and result.removed == 0 and day_count(reference_db, END) == count
