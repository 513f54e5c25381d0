"""One clock for retention and compression (issue 13.1-13.3), on both editions.

Apache-edition tests cover application retention on KapMan's clock; the community-edition tests
(paused versus scheduled policies, the ledger after a policy drop, writes into compressed chunks,
a load while the policy jobs run) carry the ``community`` marker and skip elsewhere with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest

from kapman.clock import close_of
from kapman.db import lifecycle, retention
from kapman.db.capabilities import server_info
from kapman.db.rebuild import rebuild
from kapman.db.validate import validate
from kapman.errors import UsageError
from tests.support import database

pytestmark = pytest.mark.integration

TICKER = "00000000-0000-0000-0000-000000000001"
FROZEN = "2025-12-19"


@pytest.fixture
def scratch(admin_url: str, dropper: database.Dropper) -> Iterator[str]:
    """The URL of a database each test rebuilds (the rebuild creates it)."""
    url = database.scratch_url(admin_url, "lc_")
    yield url
    dropper.drop(url)


@pytest.fixture
def apache(license_name: str) -> None:
    if license_name == "timescale":
        pytest.skip("Apache edition only: the community edition's policies are tested separately")


def _fill(url: str, first: str = "2022-01-03", last: str = "2025-12-19") -> None:
    """Daily bars and one ledger row per day (the ledger says every day's file is loaded)."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("""INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume)
                     SELECT %s, d::date, 1, 1, 1, 1, 1
                     FROM generate_series(%s::date, %s::date, interval '1 day') d""", (TICKER, first, last))
        c.execute("""INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type,
                                                contract_symbol)
                     SELECT d + interval '21 hours', %s, d::date + 30, 100, 'C', 'O:T'
                     FROM generate_series(%s::date, %s::date, interval '1 day') d""", (TICKER, first, last))
        c.execute("""INSERT INTO ingest_files (source, key, trading_date, etag, rows_read, rows_loaded,
                                              rows_rejected, rows_unknown)
                     SELECT 'file://m', 'day/' || d::date, d::date, 'e', 1, 1, 0, 0
                     FROM generate_series(%s::date, %s::date, interval '1 day') d""", (first, last))


def _oldest(url: str) -> tuple[date, date]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT (SELECT min(date) FROM ohlcv), (SELECT min(trading_date) FROM ingest_files)"
                         ).fetchone()  # type: ignore[return-value]


# --- the clock the database records ----------------------------------------------------------------

def test_rebuild_on_real_time_records_the_real_clock(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    result = rebuild(scratch)
    with psycopg.connect(scratch) as c:
        assert lifecycle.read_clock(c) == lifecycle.Clock("real")
    checks = {ch.name: ch for ch in result.iterations[-1].report.checks}
    assert checks["lifecycle clock"].ok and checks["lifecycle clock"].detail == "KapMan's clock is real time"


def test_rebuild_on_a_frozen_clock_records_it(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    result = rebuild(scratch)
    with psycopg.connect(scratch) as c:
        assert lifecycle.read_clock(c) == lifecycle.Clock("frozen", close_of(date(2025, 12, 19)))
    assert result.iterations[-1].report.lifecycle_clock == lifecycle.Clock("frozen", close_of(date(2025, 12, 19)))


def test_a_clock_frozen_today_counts_as_real_time(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", datetime.now(UTC).isoformat())
    rebuild(scratch)
    with psycopg.connect(scratch) as c:
        assert lifecycle.read_clock(c).mode == "real"


def test_a_frozen_write_freezes_a_real_database_and_only_moves_forward(
        scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    with psycopg.connect(scratch, autocommit=True) as c:
        monkeypatch.setenv("KAPMAN_NOW", "2025-12-15")
        assert lifecycle.adopt_process_clock(c) == lifecycle.Clock("frozen", close_of(date(2025, 12, 15)))
        monkeypatch.setenv("KAPMAN_NOW", "2025-12-19")
        lifecycle.adopt_process_clock(c)
        monkeypatch.setenv("KAPMAN_NOW", "2025-12-16")
        lifecycle.adopt_process_clock(c)
        assert lifecycle.read_clock(c).frozen_at == close_of(date(2025, 12, 19))
        monkeypatch.delenv("KAPMAN_NOW")
        assert lifecycle.adopt_process_clock(c).mode == "frozen"   # real time never unfreezes it



def test_a_clock_ahead_of_real_time_is_never_recorded(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped KAPMAN_NOW (2052 for 2025) on a load that is then refused must not become the
    database's clock: the next run without KAPMAN_NOW counted from it and dropped every chunk."""
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch, "2024-01-02")
    monkeypatch.setenv("KAPMAN_NOW", "2052-12-19")
    with lifecycle.policies_paused(scratch):     # as every OHLCV load starts
        pass
    with psycopg.connect(scratch, autocommit=True) as c:
        assert lifecycle.adopt_process_clock(c) == lifecycle.Clock("frozen", close_of(date(2025, 12, 19)))
        assert lifecycle.read_clock(c) == lifecycle.Clock("frozen", close_of(date(2025, 12, 19)))
        monkeypatch.delenv("KAPMAN_NOW")
        report = retention.enforce_retention(c)
    assert report.cutoff == date(2023, 12, 20) and report.chunks_dropped == 0
    assert _oldest(scratch) == (date(2024, 1, 2), date(2024, 1, 2))


def test_a_run_on_a_clock_ahead_of_real_time_drops_nothing(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run itself: with KAPMAN_NOW=2052-12-19 a load's retention counted its cutoff from 2052 and
    dropped every chunk of every table, option snapshots included, in that very run."""
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch, "2024-01-02")
    monkeypatch.setenv("KAPMAN_NOW", "2052-12-19")
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.enforce_retention(c)
        assert report.mode == "ahead" and report.chunks_dropped == 0 and report.cutoff is None
        assert report.describe() == ("retention: not enforced: KapMan's clock (2052-12-19, KAPMAN_NOW) is ahead of "
                                     "real time, so its cutoff would drop what the window keeps; nothing dropped "
                                     "or compressed")
        assert c.execute("SELECT min(time)::date FROM options_chains").fetchone() == (date(2024, 1, 2),)
    assert _oldest(scratch) == (date(2024, 1, 2), date(2024, 1, 2))


def test_a_rebuild_on_a_clock_ahead_of_real_time_is_refused(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch, "2025-12-01")
    monkeypatch.setenv("KAPMAN_NOW", "2052-12-19")
    with pytest.raises(UsageError, match=r"KAPMAN_NOW \(2052-12-19 21:00 UTC\) is ahead of real time") as info:
        rebuild(scratch)
    assert info.value.message.endswith("nothing changed") and "unset KAPMAN_NOW" in (info.value.hint or "")
    with psycopg.connect(scratch) as c:
        assert lifecycle.read_clock(c) == lifecycle.Clock("frozen", close_of(date(2025, 12, 19)))
        assert c.execute("SELECT count(*) FROM ohlcv").fetchone()[0] == 19  # type: ignore[index]


# --- application retention (Apache edition) -------------------------------------------------------

def test_retention_without_kapman_now_counts_from_the_recorded_clock(
        scratch: str, monkeypatch: pytest.MonkeyPatch, apache: None) -> None:
    """Issue 13 reproduction 2: a shell without KAPMAN_NOW must not drop by the real date."""
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch, "2023-06-01")
    monkeypatch.delenv("KAPMAN_NOW")
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.enforce_retention(c)
        assert retention.cutoff(c) == date(2023, 12, 20)
    assert report.mode == "application" and report.cutoff == date(2023, 12, 20)
    assert report.now is not None and report.now.source == "recorded"
    with psycopg.connect(scratch) as c:
        kept = c.execute("SELECT count(*) FROM ohlcv WHERE date >= '2023-12-20'").fetchone()[0]  # type: ignore[index]
    assert kept == (date(2025, 12, 19) - date(2023, 12, 20)).days + 1
    line = report.describe()
    assert ("retention: enforced by KapMan (730 days) on its clock (2025-12-19, the database's frozen clock "
            "(KAPMAN_NOW is unset here)): cutoff 2023-12-20") in line
    assert "compression unavailable (Apache edition)" in line


def test_dropped_days_leave_the_ledger_in_the_same_transaction(
        scratch: str, monkeypatch: pytest.MonkeyPatch, apache: None) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch)
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.enforce_retention(c)
    oldest_bar, oldest_file = _oldest(scratch)
    assert report.chunks_dropped > 0 and report.ledger_removed
    assert oldest_file == oldest_bar          # no file is recorded for a day whose rows are gone
    assert report.ledger_removed[0] == date(2022, 1, 3) and report.ledger_removed[-1] < oldest_bar
    assert f"{len(report.ledger_removed)} ledger day(s) removed" in report.describe()
    with psycopg.connect(scratch) as c:
        orphans = c.execute("SELECT count(*) FROM ingest_files f WHERE NOT EXISTS "
                            "(SELECT 1 FROM ohlcv o WHERE o.date = f.trading_date)").fetchone()[0]  # type: ignore[index]
    assert orphans == 0


def test_retention_is_atomic_with_the_ledger(scratch: str, monkeypatch: pytest.MonkeyPatch, apache: None) -> None:
    """If deleting the ledger rows fails, the chunks stay too."""
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch)
    with psycopg.connect(scratch, autocommit=True) as c:
        c.execute("""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
                     $$BEGIN RAISE EXCEPTION 'ledger locked'; END$$""")
        c.execute("CREATE TRIGGER refuse BEFORE DELETE ON ingest_files FOR EACH ROW EXECUTE FUNCTION refuse()")
        with pytest.raises(psycopg.errors.RaiseException):
            retention.enforce_retention(c)
        assert c.execute("SELECT min(date) FROM ohlcv").fetchone()[0] == date(2022, 1, 3)  # type: ignore[index]


def test_a_failed_run_never_drops(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch)
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.after_run(c, succeeded=False)
    assert report.mode == "skipped" and report.chunks_dropped == 0
    assert report.describe() == retention.SKIPPED_LINE
    assert _oldest(scratch) == (date(2022, 1, 3), date(2022, 1, 3))


def test_reconcile_ledger_removes_only_days_claiming_missing_rows(scratch: str) -> None:
    rebuild(scratch)
    _fill(scratch, "2025-12-01", "2025-12-10")
    with psycopg.connect(scratch, autocommit=True) as c:
        c.execute("DELETE FROM ohlcv WHERE date IN ('2025-12-03', '2025-12-04')")
        c.execute("UPDATE ingest_files SET rows_loaded = 0 WHERE trading_date = '2025-12-04'")
        with c.transaction():
            removed = retention.reconcile_ledger(c)
        assert removed == [date(2025, 12, 3)]          # 12-04 never claimed a row
        assert c.execute("SELECT count(*) FROM ingest_files").fetchone()[0] == 9  # type: ignore[index]


def test_policies_paused_does_nothing_without_policy_jobs(
        scratch: str, monkeypatch: pytest.MonkeyPatch, apache: None) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    with lifecycle.policies_paused(scratch, ["ohlcv"]) as paused:
        assert paused == []
    with psycopg.connect(scratch) as c:
        assert lifecycle.policy_jobs(c) == []


def test_validation_reports_the_recorded_clock(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    with psycopg.connect(scratch) as c:
        report = validate(c, server_info(c))
    check = {ch.name: ch for ch in report.checks}["lifecycle clock"]
    assert check.ok and check.detail == "KapMan's clock is frozen at 2025-12-19 21:00 UTC"


def test_no_session_caps_the_tuples_a_write_decompresses(scratch: str) -> None:
    result = rebuild(scratch)
    with psycopg.connect(scratch) as c:
        assert c.execute("SHOW timescaledb.max_tuples_decompressed_per_dml_transaction").fetchone() == ("0",)
    check = {ch.name: ch for ch in result.iterations[-1].report.checks}["writes into compressed chunks"]
    assert check.ok and check.detail == "no decompression limit"


# --- community edition: the built-in policies ----------------------------------------------------

def _jobs(url: str) -> dict[tuple[str, str], bool]:
    with psycopg.connect(url) as c:
        return {(j.proc_name, j.hypertable): j.scheduled for j in lifecycle.policy_jobs(c)}


def _job_id(url: str, proc: str, table: str) -> int:
    with psycopg.connect(url) as c:
        return next(j.job_id for j in lifecycle.policy_jobs(c) if (j.proc_name, j.hypertable) == (proc, table))


@pytest.mark.community
def test_policies_are_scheduled_on_a_real_clock(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    jobs = _jobs(scratch)
    assert len(jobs) == 6 and all(jobs.values())
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.enforce_retention(c)
    assert report.mode == "policy"
    assert report.describe() == ("retention: TimescaleDB policies (730 days, compression after 120 days) "
                                 "scheduled on the server's clock, which is KapMan's")


@pytest.mark.community
def test_policies_exist_but_are_paused_on_a_frozen_clock(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    jobs = _jobs(scratch)
    assert len(jobs) == 6 and not any(jobs.values())
    _fill(scratch, "2023-01-02")
    monkeypatch.delenv("KAPMAN_NOW")
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.enforce_retention(c)
        compressed_old = c.execute("SELECT bool_and(is_compressed) FROM timescaledb_information.chunks "
                                   "WHERE hypertable_name = 'ohlcv' AND range_end <= '2025-08-21'").fetchone()[0]  # type: ignore[index]
        recent = c.execute("SELECT bool_or(is_compressed) FROM timescaledb_information.chunks "
                           "WHERE hypertable_name = 'ohlcv' AND range_start >= '2025-08-21'").fetchone()[0]  # type: ignore[index]
    assert report.mode == "paused-policy" and report.cutoff == date(2023, 12, 20)
    assert report.compress_cutoff == date(2025, 8, 21) and report.chunks_compressed > 0
    assert compressed_old and not recent
    assert report.describe().startswith("retention: TimescaleDB policies paused (KapMan's clock is frozen at "
                                        "2025-12-19 21:00 UTC); KapMan enforced 730 days on its clock")
    assert _oldest(scratch)[0] >= date(2023, 11, 20)


@pytest.mark.community
def test_ledger_after_a_policy_drop(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    today = datetime.now(UTC).date()
    _fill(scratch, str(today.replace(year=today.year - 3)), str(today))
    with psycopg.connect(scratch, autocommit=True) as c:
        c.execute("CALL run_job(%s)", (_job_id(scratch, "policy_retention", "ohlcv"),))
        report = retention.after_run(c, succeeded=True)     # the next successful run mends the ledger
    oldest_bar, oldest_file = _oldest(scratch)
    assert report.mode == "policy" and report.ledger_removed and oldest_file == oldest_bar
    assert "the days they dropped left the ledger" in report.describe()


@pytest.mark.community
def test_writes_into_compressed_chunks(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    _fill(scratch, "2024-06-03", "2025-12-19")
    with psycopg.connect(scratch, autocommit=True) as c:
        assert retention.enforce_retention(c).chunks_compressed > 0
        c.execute("""INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume)
                     SELECT %s, d::date, 2, 2, 2, 2, 2 FROM generate_series(date '2024-07-01', date '2024-07-31',
                     interval '1 day') d
                     ON CONFLICT (ticker_id, date) DO UPDATE SET close = EXCLUDED.close
                     WHERE ohlcv.close IS DISTINCT FROM EXCLUDED.close""", (TICKER,))
        c.execute("""INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume)
                     VALUES ('00000000-0000-0000-0000-000000000002', '2024-07-15', 3, 3, 3, 3, 3)""")
        closes = c.execute("SELECT count(*) FILTER (WHERE close = 2), count(*) FROM ohlcv "
                           "WHERE date BETWEEN '2024-07-01' AND '2024-07-31'").fetchone()
    assert closes == (31, 32)


@pytest.mark.community
def test_a_load_while_the_policy_jobs_run(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job already running when the load starts is waited for; none starts during the load; all
    are back on schedule afterwards."""
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    today = datetime.now(UTC).date()
    _fill(scratch, str(today.replace(year=today.year - 1)), str(today))
    with psycopg.connect(scratch, autocommit=True) as c:
        for table in ("ohlcv", "options_chains"):   # due now: the scheduler starts them at once
            c.execute("SELECT alter_job(%s, next_start => now())", (_job_id(scratch, "policy_compression", table),))
    with lifecycle.policies_paused(scratch) as paused:      # every lifecycle table's jobs
        assert {j.proc_name for j in paused} == {"policy_retention", "policy_compression"}
        with psycopg.connect(scratch, autocommit=True) as c:
            assert lifecycle._running(c, lifecycle.policy_jobs(c)) == []
            for _ in range(5):
                with c.transaction(), c.cursor().copy(
                        "COPY ohlcv (ticker_id, date, open, high, low, close, volume) FROM STDIN") as cp:
                    for n in range(2, 62):
                        cp.write_row((f"00000000-0000-0000-0000-{n:012d}", today, 1, 1, 1, 1, 1))
                c.execute("DELETE FROM ohlcv WHERE date = %s AND ticker_id <> %s", (today, TICKER))
            assert not any(_jobs(scratch).values())
    assert all(_jobs(scratch).values())


@pytest.mark.community
def test_pause_is_undone_after_an_error_and_ctrl_c(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    for exc in (RuntimeError("load failed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), lifecycle.policies_paused(scratch):
            assert not any(_jobs(scratch).values())
            raise exc
        assert all(_jobs(scratch).values())


@pytest.mark.community
def test_the_last_loader_out_resumes(scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    with lifecycle.policies_paused(scratch):
        with lifecycle.policies_paused(scratch):
            pass
        assert not any(_jobs(scratch).values())      # the outer load is still running
    assert all(_jobs(scratch).values())


@pytest.mark.community
def test_a_frozen_clock_keeps_the_policies_paused_after_a_load(
        scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    rebuild(scratch)
    with lifecycle.policies_paused(scratch):
        pass
    assert not any(_jobs(scratch).values())


@pytest.mark.community
def test_jobs_left_paused_by_a_killed_loader_are_repaired(
        scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    rebuild(scratch)
    with psycopg.connect(scratch, autocommit=True) as c:
        lifecycle.set_scheduled(c, lifecycle.policy_jobs(c), False)   # as a kill -9 mid-load leaves them
        assert lifecycle.settle_schedule(c)
    assert all(_jobs(scratch).values())
