"""scripts.status on an empty and on a hydrated database, by KapMan's clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from unittest.mock import patch

import psycopg
import pytest
from psycopg.types.json import Jsonb

from kapman import registry
from kapman.clock import ny_date_of, parse_instant
from kapman.db import lifecycle
from kapman.db.migrations import discover
from kapman.ops import status
from kapman.ops.checks import Verdict
from tests.support.hydrate import hydrate

pytestmark = pytest.mark.integration

#: Friday 2025-12-19 17:00 New York: after the close, before the day's flat file is final.
EVENING = parse_instant("2025-12-19T22:00:00Z")


@pytest.fixture
def sandbox_db(db: psycopg.Connection) -> psycopg.Connection:
    """The data is the sandbox's, older than the real clock's window: the database's lifecycle
    follows the sandbox's frozen clock, so the community edition's policies are paused (they
    neither drop the data nor leave a run's outcome in the schema check)."""
    lifecycle.record_clock(db, lifecycle.Clock("frozen", EVENING))
    return db


@pytest.fixture
def jobs_before_first_run(db: psycopg.Connection) -> psycopg.Connection:
    """The policy jobs as a rebuild schedules them, before the scheduler's first run, the next an
    hour away.  The scheduler runs a new database's jobs within a second (in this copy and in the
    template it was copied from) and what those runs leave is the server's outcome, not the
    rebuild's: a test of a healthy schedule starts from a known state instead of racing it."""
    jobs = [j.job_id for j in lifecycle.policy_jobs(db)]
    for job in jobs:            # none starts again; one already running finishes first, and its
        db.execute("SELECT alter_job(%s, scheduled => false)", (job,))   # outcome is then cleared too
    deadline = time.monotonic() + 60
    while db.execute("SELECT count(*) FROM timescaledb_information.job_stats WHERE job_id = ANY(%s) "
                     "AND job_status = 'Running'", (jobs,)).fetchone()[0]:  # type: ignore[index]
        assert time.monotonic() < deadline, "a policy job still runs after 60 s"
        time.sleep(0.1)
    with db.transaction():     # a job without stats in between would be due at once
        db.execute("DELETE FROM _timescaledb_internal.bgw_job_stat WHERE job_id = ANY(%s)", (jobs,))
        for job in jobs:
            db.execute("SELECT alter_job(%s, scheduled => true, next_start => now() + interval '1 hour')", (job,))
    return db


def verdicts(report: status.StatusReport) -> dict[str, str]:
    return {c.area: c.verdict.name for c in report.checks}


def test_an_empty_database_fails_and_names_each_fix(sandbox_db: psycopg.Connection) -> None:
    report = status.report(sandbox_db, EVENING)
    assert report.exit_code == 2
    assert verdicts(report) == {"schema": "OK", "tickers": "FAIL", "ohlcv": "FAIL", "ledger": "OK",
                                "options": "WARN", "a2": "WARN", "a3": "OK", "runs": "WARN"}
    assert report.check("tickers").fix == "python -m scripts.ingest_tickers --force"
    assert report.check("ohlcv").fix == "python -m scripts.ingest_ohlcv base"
    schema = report.check("schema")
    assert schema.details["migrations_applied"] == len(discover()) and len(schema.details["fingerprint"]) == 64
    assert schema.details["lifecycle"] == dict.fromkeys(("ohlcv", "options_chains", "daily_snapshots"),
                                                        "application") \
        or set(schema.details["lifecycle"].values()) == {"policy"}


def test_a_hydrated_database_by_the_data_clock(sandbox_db: psycopg.Connection) -> None:
    hydrate(sandbox_db)
    report = status.report(sandbox_db, EVENING)
    # Options are WARN: 2025-12-19's snapshot holds 2 of the 4 watchlist symbols and its session is
    # open until midnight (OK only for a complete day); neither snapshot is in the archive.
    assert verdicts(report) == {"schema": "OK", "tickers": "WARN", "ohlcv": "WARN", "ledger": "WARN",
                                "options": "WARN", "a2": "OK", "a3": "OK", "archive": "WARN", "runs": "WARN"}
    assert report.exit_code == 1
    tickers = report.check("tickers")
    assert tickers.details["unresolved_watchlist_symbols"] == 1            # ZZZZ
    ohlcv = report.check("ohlcv")
    # 40 days of history: the 2025-12-19 file is not due until 11:00 tomorrow, nothing inside is missing.
    assert ohlcv.details["missing"] == [] and ohlcv.details["oldest"] == date(2025, 10, 24)
    assert ohlcv.details["newest"] == date(2025, 12, 19) and ohlcv.details["newest_rows"] == 4
    assert ohlcv.fix == "python -m scripts.ingest_ohlcv base"
    ledger = report.check("ledger")
    assert len(ledger.details["bars_without_file"]) == 37 and ledger.details["count_mismatch"] == []
    options = report.check("options")
    assert options.details["with_snapshot"] == 2 and options.details["newest_symbols"] == 2
    assert options.details["pending_missing"] == ["MSFT", "NVDA"]
    assert "2025-12-19: 2 of 4 symbols stored, missing MSFT NVDA" in options.summary
    assert "it fetches only the missing symbols" in (options.fix or "")
    assert report.check("a3").details["invalid"] == {"2025-12-19": 1}
    assert report.check("archive").details["not_archived"] == 2
    assert report.check("a2").details["dates"] == 5 and report.check("a3").details["dates"] == 2
    runs = report.check("runs")
    assert runs.details["options"]["status"] == "partial" and runs.details["ohlcv"]["seconds"] == 120
    assert runs.fix == "python -m scripts.ingest_options"


def test_a_session_without_a_snapshot_is_pending_that_evening_and_lost_after_midnight(
        sandbox_db: psycopg.Connection) -> None:
    db = sandbox_db
    hydrate(db)
    monday_evening = status.report(db, parse_instant("2025-12-22T22:00:00Z")).check("options")
    assert monday_evening.verdict is Verdict.WARN and monday_evening.details["pending"] == date(2025, 12, 22)
    assert "before midnight" in (monday_evening.fix or "")
    tuesday = status.report(db, parse_instant("2025-12-23T16:00:00Z"))
    options = tuesday.check("options")
    assert options.details["lost_recent"] == [date(2025, 12, 22)] and options.details["pending"] is None
    assert "lost (never taken): 2025-12-22" in options.summary and "lost for good" in (options.fix or "")
    ohlcv = tuesday.check("ohlcv")
    assert ohlcv.details["missing"] == [date(2025, 12, 22)] and ohlcv.fix == "python -m scripts.nightly"


def test_a_lost_snapshots_fix_points_where_the_schedule_is_told(sandbox_db: psycopg.Connection,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook's nightly section is in a checkout only; an installed KapMan was sent to a
    docs/runbooks/README.md it does not have."""
    hydrate(sandbox_db)
    tuesday = parse_instant("2025-12-23T16:00:00Z")
    assert (status.report(sandbox_db, tuesday).check("options").fix or "").endswith(
        "after each close (docs/runbooks/README.md, nightly)")
    monkeypatch.setattr(registry, "CHECKOUT", None)
    fix = status.report(sandbox_db, tuesday).check("options").fix or ""
    assert "docs/runbooks" not in fix and fix.endswith("after each close (its --help says when)")


def test_the_command_prints_json_and_exits_with_the_verdict(fresh_db: str) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_db, "KAPMAN_NOW": "2025-12-19T22:00:00Z"}
    proc = subprocess.run([sys.executable, "-m", "scripts.status", "--json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "FAIL" and data["exit_code"] == 2 and data["now"].startswith("2025-12-19 22:00")
    assert [c["area"] for c in data["checks"]] == ["schema", "tickers", "ohlcv", "ledger", "options", "a2", "a3",
                                                  "runs"]
    text = subprocess.run([sys.executable, "-m", "scripts.status"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert text.returncode == 2 and "FAIL  tickers" in text.stdout and text.stdout.rstrip().endswith("(exit 2)")


@pytest.mark.parametrize("args", [[], ["--json"]], ids=["text", "json"])
def test_status_into_a_pipe_its_reader_closed_ends_quietly(fresh_db: str, args: list[str]) -> None:
    """``scripts.status | head -1``: it said 'unexpected BrokenPipeError ... this is a bug' (exit 2),
    and a traceback under --json."""
    env = {**os.environ, "DATABASE_URL": fresh_db, "KAPMAN_NOW": "2025-12-19T22:00:00Z"}
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "scripts.status", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")


@pytest.mark.community
def test_on_the_community_edition_the_policy_jobs_and_their_next_runs(
        jobs_before_first_run: psycopg.Connection) -> None:
    schema = status.report(jobs_before_first_run, EVENING).check("schema")
    assert schema.verdict is Verdict.OK, schema.summary
    jobs = schema.details["policy_jobs"]
    assert sorted((j["hypertable"], j["job"]) for j in jobs) == [
        ("daily_snapshots", "policy_compression"), ("daily_snapshots", "policy_retention"),
        ("ohlcv", "policy_compression"), ("ohlcv", "policy_retention"),
        ("options_chains", "policy_compression"), ("options_chains", "policy_retention")]
    assert all(j["next_start"] is not None for j in jobs) and "next run" in schema.summary


@pytest.mark.community
def test_on_the_community_edition_a_failed_policy_job_is_a_warning_its_fix_reruns(
        jobs_before_first_run: psycopg.Connection) -> None:
    db = jobs_before_first_run
    job = db.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                     "AND hypertable_name = 'ohlcv'").fetchone()[0]  # type: ignore[index]
    # A retention policy of hypertable 0 (its window kept: only the failure is wrong) fails when the
    # scheduler runs it.  TimescaleDB checks a new config with the job's check function, so the job
    # gets one that accepts anything.
    config = db.execute("SELECT config FROM timescaledb_information.jobs WHERE job_id = %s", (job,)).fetchone()[0]  # type: ignore[index]
    db.execute("CREATE FUNCTION public.accept_any_config(config jsonb) RETURNS void LANGUAGE sql AS 'SELECT'")
    changed = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    db.execute("SELECT alter_job(%s, config => '{\"hypertable_id\": 0, \"drop_after\": \"730 days\"}'::jsonb, "
               "check_config => 'public.accept_any_config', next_start => now())", (job,))
    # The scheduler of a database copied from a template starts at the launcher's next poll
    # (timescaledb.bgw_launcher_poll_time, a minute by default), then runs the job at once.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:   # a run of the broken job, not one from before the change
        failed = db.execute("SELECT last_run_status FROM timescaledb_information.job_stats "
                            "WHERE job_id = %s AND last_run_started_at >= %s", (job, changed)).fetchone()
        if failed and failed[0] == "Failed":
            break
        time.sleep(0.5)
    schema = status.report(db, with_archive=False).check("schema")
    assert schema.verdict is Verdict.WARN and "last run failed: policy_retention on ohlcv" in schema.summary
    assert schema.fix is not None and schema.fix.startswith(f"SELECT alter_job({job}, next_start => now())")
    broken = next(j for j in schema.details["policy_jobs"] if j["job_id"] == job)
    assert broken["last_run_status"] == "Failed" and "hypertable 0" in broken["last_error"]
    # The fix is SQL that runs as printed, once the cause is mended.  It was 'CALL run_job(id) (after
    # mending ...)': prose in the command, and a run in the caller's session, which job_stats never
    # records, so the warning stayed after the job was mended and run.
    assert "mend the cause (timescaledb_information.job_errors)" in schema.summary
    assert schema.fix == f"SELECT alter_job({job}, next_start => now())"
    db.execute("SELECT alter_job(%s, config => %s, check_config => '_timescaledb_functions.policy_retention_check')",
               (job, Jsonb(config)))
    mended_at = db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    db.execute(schema.fix)
    deadline = time.monotonic() + 180
    ran = None
    while time.monotonic() < deadline and not (ran and ran[0] in ("Success", "Failed")):
        time.sleep(0.5)
        ran = db.execute("SELECT last_run_status FROM timescaledb_information.job_stats "
                         "WHERE job_id = %s AND last_run_started_at >= %s", (job, mended_at)).fetchone()
    assert ran is not None, "the fix did not make the scheduler run the job again"
    rerun = next(j for j in status.report(db, with_archive=False).check("schema").details["policy_jobs"]
                 if j["job_id"] == job)
    assert "hypertable 0" not in (rerun["last_error"] or "")   # the mended job's own run is what status reads
    if ran[0] == "Success":     # a server whose scheduler runs jobs cleanly: the warning is gone
        assert status.report(db, with_archive=False).check("schema").verdict is Verdict.OK


@pytest.mark.community
def test_on_the_community_edition_a_job_left_paused_is_a_warning_and_one_paused_by_a_load_is_not(
        jobs_before_first_run: psycopg.Connection, fresh_db: str) -> None:
    db = jobs_before_first_run
    with lifecycle.policies_paused(fresh_db) as paused:     # a bulk load in progress
        assert len(paused) == 6
        schema = status.report(db, with_archive=False).check("schema")
        assert schema.verdict is Verdict.OK, schema.summary
        assert "paused for a running load: policy_compression on daily_snapshots" in schema.summary
        assert "next run" not in schema.summary and not any(j["scheduled"] for j in schema.details["policy_jobs"])
    assert status.report(db, with_archive=False).check("schema").verdict is Verdict.OK
    job = db.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                     "AND hypertable_name = 'ohlcv'").fetchone()[0]  # type: ignore[index]
    db.execute("SELECT alter_job(%s, scheduled => false)", (job,))    # as a killed load leaves it
    schema = status.report(db, with_archive=False).check("schema")
    assert schema.verdict is Verdict.WARN, schema.summary
    assert schema.summary.endswith("; paused with no load running: policy_retention on ohlcv")
    assert schema.fix == f"SELECT alter_job({job}, scheduled => true)"
    db.execute(schema.fix)
    assert status.report(db, with_archive=False).check("schema").verdict is Verdict.OK


@pytest.mark.community
def test_on_the_community_edition_a_running_job_is_read_without_error(
        jobs_before_first_run: psycopg.Connection) -> None:
    """``next_start`` is -infinity while a job runs, a value psycopg cannot load as a datetime.  It is
    -infinity too after ``alter_job(schedule_interval => ...)`` on a job that never ran, which
    status then said was running now: whether a job runs is ``job_stats``' to say."""
    db = jobs_before_first_run
    query = status._POLICY_JOBS.replace("j.next_start", "'-infinity'::timestamptz")
    rows = db.execute(query).fetchall()
    assert rows and all(r[3] is None and r[4] == "-infinity" for r in rows)
    with patch.object(status, "_POLICY_JOBS", query):
        schema = status.report(db, with_archive=False).check("schema")
    assert schema.verdict is Verdict.OK, schema.summary
    assert "running now" not in schema.summary and not any(j["running"] for j in schema.details["policy_jobs"])


def _job(db: psycopg.Connection, proc: str, table: str) -> int:
    return db.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s "
                      "AND hypertable_name = %s", (proc, table)).fetchone()[0]  # type: ignore[index]


@pytest.mark.community
def test_on_the_community_edition_a_policy_window_edited_by_hand_is_said_and_its_fix_restores_it(
        jobs_before_first_run: psycopg.Connection) -> None:
    """A retention job edited to 30 days drops on the server's schedule what the 730-day window keeps,
    option snapshots that cannot be fetched again: status read it as healthy."""
    db = jobs_before_first_run
    job = _job(db, "policy_retention", "options_chains")
    db.execute("SELECT alter_job(job_id, config => jsonb_set(config, '{drop_after}', '\"30 days\"')) "
               "FROM timescaledb_information.jobs WHERE job_id = %s", (job,))
    schema = status.report(db, with_archive=False).check("schema")
    assert schema.verdict is Verdict.FAIL, schema.summary
    assert ("policy window edited: policy_retention on options_chains counts 30 days where the warehouse "
            "keeps 730 days") in schema.summary
    assert schema.fix == (f"SELECT alter_job(job_id, config => jsonb_set(config, '{{drop_after}}', "
                          f"'\"730 days\"')) FROM timescaledb_information.jobs WHERE job_id = {job}")
    db.execute(schema.fix)
    assert status.report(db, with_archive=False).check("schema").verdict is Verdict.OK
    # A compression window moved compresses earlier or later: a warning, not a failure.
    job = _job(db, "policy_compression", "ohlcv")
    db.execute("SELECT alter_job(job_id, config => jsonb_set(config, '{compress_after}', '\"7 days\"')) "
               "FROM timescaledb_information.jobs WHERE job_id = %s", (job,))
    schema = status.report(db, with_archive=False).check("schema")
    assert schema.verdict is Verdict.WARN, schema.summary
    assert "policy_compression on ohlcv counts 7 days where the warehouse keeps 120 days" in schema.summary
    db.execute(schema.fix)  # type: ignore[arg-type]
    assert status.report(db, with_archive=False).check("schema").verdict is Verdict.OK


@pytest.mark.community
def test_on_the_community_edition_a_deleted_policy_job_is_added_back_not_rebuilt(
        jobs_before_first_run: psycopg.Connection) -> None:
    """The fix named the rebuild, which drops the database and every option snapshot with it."""
    db = jobs_before_first_run
    db.execute("SELECT delete_job(%s)", (_job(db, "policy_retention", "options_chains"),))
    schema = status.report(db, with_archive=False).check("schema")
    assert schema.verdict is Verdict.FAIL, schema.summary
    assert schema.summary.endswith("; policy jobs missing: policy_retention on options_chains")
    assert schema.fix == "SELECT add_retention_policy('public.options_chains', drop_after => INTERVAL '730 days')"
    db.execute(schema.fix)
    assert status.report(db, with_archive=False).check("schema").verdict is Verdict.OK
    config = db.execute("SELECT config->>'drop_after' FROM timescaledb_information.jobs WHERE job_id = %s",
                        (_job(db, "policy_retention", "options_chains"),)).fetchone()[0]  # type: ignore[index]
    assert config == "730 days"


@pytest.mark.community
def test_on_a_frozen_clock_a_deleted_policy_job_comes_back_paused(sandbox_db: psycopg.Connection) -> None:
    db = sandbox_db
    db.execute("SELECT delete_job(%s)", (_job(db, "policy_compression", "daily_snapshots"),))
    schema = status.report(db, EVENING, with_archive=False).check("schema")
    assert schema.verdict is Verdict.FAIL and schema.fix == (
        "SELECT alter_job(add_compression_policy('public.daily_snapshots', compress_after => INTERVAL '120 days'), "
        "scheduled => false)")
    db.execute(schema.fix)
    again = status.report(db, EVENING, with_archive=False).check("schema")
    assert again.verdict is Verdict.OK and "6 policy jobs paused" in again.summary, again.summary
    # A paused job's edited window counts once the clock is real again: said now.
    db.execute("SELECT alter_job(job_id, config => jsonb_set(config, '{drop_after}', '\"30 days\"')) "
               "FROM timescaledb_information.jobs WHERE job_id = %s", (_job(db, "policy_retention", "ohlcv"),))
    edited = status.report(db, EVENING, with_archive=False).check("schema")
    assert edited.verdict is Verdict.WARN and "policy_retention on ohlcv counts 30 days" in edited.summary


def test_the_schema_line_names_the_clock_the_status_counts_from(sandbox_db: psycopg.Connection) -> None:
    """The recorded instant moves only with a bulk load; a morning of reference steps later, the
    schema line said the evening's instant while the header said the morning's."""
    morning = parse_instant("2025-12-22T16:30:00Z")
    report = status.report(sandbox_db, morning)
    assert "(KapMan's clock is frozen at 2025-12-22 16:30 UTC)" in report.check("schema").summary
    assert report.check("schema").details["clock"] == {"mode": "frozen", "frozen_at": EVENING}


def test_a_clock_ahead_of_real_time_fails_the_schema_and_names_kapman_now(sandbox_db: psycopg.Connection) -> None:
    """A mistyped KAPMAN_NOW (2052 for 2025): every area counted from a day that has not come, the
    schema line named ``ingest_ohlcv incremental`` to drop bars 'past retention', which a run on
    that clock never drops, and nothing said that the clock was the trouble."""
    hydrate(sandbox_db)
    report = status.report(sandbox_db, parse_instant("2052-12-19"))
    schema = report.check("schema")
    assert schema.verdict is Verdict.FAIL and report.exit_code == 2
    assert "KapMan's clock (2052-12-19 16:00 New York) is ahead of real time (" in schema.summary
    assert schema.fix == "fix or unset KAPMAN_NOW (a replayed day is in the past)"
    assert len(report.checks) > 1      # the other areas are still read, by that clock


@pytest.mark.community
def test_on_a_frozen_clock_a_scheduled_policy_job_is_a_warning_and_its_fix_pauses_it(
        sandbox_db: psycopg.Connection) -> None:
    """A job resumed by hand on a frozen clock would count 730 days from the server's date and drop
    the sandbox's bars that KapMan's window keeps: status says so, and its fix pauses the job."""
    db = sandbox_db
    assert status.report(db, EVENING, with_archive=False).check("schema").verdict is Verdict.OK
    job = db.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                     "AND hypertable_name = 'ohlcv'").fetchone()[0]  # type: ignore[index]
    db.execute("SELECT alter_job(%s, scheduled => true, next_start => now() + interval '1 hour')", (job,))
    schema = status.report(db, EVENING, with_archive=False).check("schema")
    assert schema.verdict is Verdict.WARN, schema.summary
    assert "6 policy jobs paused" not in schema.summary
    assert ("scheduled on the server's clock although KapMan's is frozen: policy_retention on ohlcv"
            in schema.summary)
    assert schema.fix == f"SELECT alter_job({job}, scheduled => false)"
    db.execute(schema.fix)
    again = status.report(db, EVENING, with_archive=False).check("schema")
    assert again.verdict is Verdict.OK and "6 policy jobs paused" in again.summary


def test_a2_says_how_many_earlier_dates_lack_the_indicator_history(sandbox_db: psycopg.Connection) -> None:
    """Not owed until asked for (the verdict stays OK), but said, with the command that computes it:
    a warehouse filled by the nightly alone after a repave has charts of a few points."""
    hydrate(sandbox_db)
    first = sandbox_db.execute("SELECT min(time) FROM daily_snapshots WHERE technical_indicators_json IS NOT NULL"
                               ).fetchone()[0]   # type: ignore[index]
    earlier = sandbox_db.execute("SELECT count(DISTINCT date) FROM ohlcv WHERE date < %s",
                                 (ny_date_of(first),)).fetchone()[0]   # type: ignore[index]
    assert earlier > 0
    a2 = status.report(sandbox_db, EVENING, with_archive=False).check("a2")
    assert a2.verdict is Verdict.OK and a2.details["history_not_computed"] == earlier
    assert a2.summary.endswith(f"one row per bar; the {earlier} earlier dates with bars have none "
                               "(python -m scripts.run_a2_local_ta --history computes them)")
