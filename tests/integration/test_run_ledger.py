"""The run ledger: every outcome recorded truthfully, on its own connection, in wall-clock time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from kapman import signals
from kapman.db import runs
from kapman.db.connect import connect, with_database
from kapman.errors import ConnectionLost, DatabaseError
from kapman.step import StepResult

pytestmark = pytest.mark.integration


def _row(url: str, run_id: object) -> tuple:
    with psycopg.connect(url) as c:
        return c.execute("SELECT status, error, summary, finished_at - started_at, clock_started_at, "
                         "args FROM ingest_runs WHERE run_id = %s", (run_id,)).fetchone()  # type: ignore[return-value]


def test_ok_result_records_outcome_summary_and_real_duration(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T21:00:00+00:00")   # a frozen KapMan clock
    with runs.recorded(fresh_db, "ohlcv", {"mode": "base", "db": "postgresql://u:hunter22@h/db"}) as run:
        time.sleep(0.2)
        run.result = StepResult("ohlcv", unit="files", written=5, done=1)
    status, error, summary, duration, clock_started, args = _row(fresh_db, run.run_id)
    assert status == "ok" and error is None
    assert summary["counts"]["written"] == 5
    assert duration >= timedelta(seconds=0.2)                  # wall clock, not the frozen clock
    assert clock_started.isoformat().startswith("2025-12-19T21:00:00")
    assert "hunter22" not in str(args) and args["mode"] == "base"


@pytest.mark.parametrize(("make", "status"), [
    (lambda r: r.fail("AAPL", "x") or r.__setattr__("done", 1), "partial"),
    (lambda r: r.nothing("no bars on a Saturday"), "nothing-to-do"),
])
def test_outcomes_of_the_result(fresh_db: str, make, status: str) -> None:  # type: ignore[no-untyped-def]
    with runs.recorded(fresh_db, "a2") as run:
        result = StepResult("a2")
        make(result)
        run.result = result
    assert _row(fresh_db, run.run_id)[0] == status


def test_ctrl_c_is_interrupted_with_what_was_done(fresh_db: str) -> None:
    with pytest.raises(KeyboardInterrupt), runs.recorded(fresh_db, "ohlcv") as run:
        run.result = StepResult("ohlcv", unit="files", written=187, done=187)
        raise KeyboardInterrupt
    status, error, summary, *_ = _row(fresh_db, run.run_id)
    assert status == "interrupted" and summary["counts"]["written"] == 187
    # the summary says how the run ended, not its result's "ok" of a run nothing had failed in yet
    assert (summary["status"], summary["exit_code"]) == ("interrupted", 130)


def test_sigterm_is_interrupted_with_its_exit_code_in_the_summary(fresh_db: str) -> None:
    with pytest.raises(KeyboardInterrupt), runs.recorded(fresh_db, "a2") as run:
        run.result = StepResult("a2", unit="dates", written=40, done=40)
        raise signals.Terminated(signal.SIGTERM)
    status, error, summary, *_ = _row(fresh_db, run.run_id)
    assert (status, error) == ("interrupted", "interrupted by SIGTERM")
    assert (summary["status"], summary["exit_code"], summary["done"]) == ("interrupted", 143, 40)


def test_an_exception_is_failed_with_its_class(fresh_db: str) -> None:
    with pytest.raises(DatabaseError), runs.recorded(fresh_db, "tickers") as run:
        run.result = StepResult("tickers", written=3, done=1)
        raise DatabaseError("merging tickers failed: boom")
    status, error, summary, *_ = _row(fresh_db, run.run_id)
    assert status == "failed" and error == "DatabaseError: merging tickers failed: boom"
    assert (summary["status"], summary["exit_code"], summary["counts"]["written"]) == ("failed", 2, 3)


def test_a_terminated_ledger_connection_still_records_the_outcome(fresh_db: str) -> None:
    with pytest.raises(ConnectionLost), runs.recorded(fresh_db, "options") as run:
        with psycopg.connect(fresh_db, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(backend_pid) FROM ingest_runs WHERE run_id = %s",
                          (run.run_id,))
        raise ConnectionLost(3, "symbols")
    status, error, *_ = _row(fresh_db, run.run_id)
    assert status == "failed"
    assert error == "ConnectionLost: the database connection was lost after 3 symbols; rerun to resume"


def test_a_killed_run_is_marked_abandoned_by_the_next(fresh_db: str) -> None:
    code = ("import os, sys, time\nfrom kapman.db import runs\n"
            "with runs.recorded(sys.argv[1], 'ohlcv') as run:\n"
            "    print(run.run_id, flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, fresh_db], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    killed_id = proc.stdout.readline().strip()  # type: ignore[union-attr]
    with runs.recorded(fresh_db, "ohlcv") as alive:   # the other run still holds its backend
        alive.result = StepResult("ohlcv")
    assert alive.abandoned == 0 and _row(fresh_db, killed_id)[0] == "running"
    proc.kill()
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # the server notices the closed socket within moments
        with runs.recorded(fresh_db, "ohlcv") as nxt:
            nxt.result = StepResult("ohlcv")
        if nxt.abandoned:
            break
        time.sleep(0.2)
    assert nxt.abandoned == 1
    status, error, *_ = _row(fresh_db, killed_id)
    assert status == "abandoned" and "without recording an outcome" in error


def test_connect_tells_a_missing_database_from_a_bad_password(fresh_db: str) -> None:
    missing = with_database(fresh_db, "kapman_test_no_such_db")
    with pytest.raises(DatabaseError) as e:
        connect(missing)
    assert e.value.sqlstate == "3D000" and not e.value.transient
    assert "does not exist" in e.value.message and "a5_deterministic_rebuild" in (e.value.hint or "")
    with pytest.raises(DatabaseError) as e:
        connect("postgresql://u:p@127.0.0.1:1/db")
    assert e.value.sqlstate == "08001" and e.value.transient
    bad_option = f"{fresh_db}{'&' if '?' in fresh_db else '?'}sslmode=bogus"   # refused before any server is asked
    with pytest.raises(DatabaseError) as e:
        connect(bad_option)
    assert e.value.message.endswith(': invalid sslmode value: "bogus"') and not e.value.transient
    assert "password" not in e.value.message and "connection options" in (e.value.hint or "")


def test_connect_names_a_wrong_password(fresh_db: str) -> None:
    parts = urlsplit(fresh_db)
    wrong = urlunsplit(parts._replace(netloc=f"{parts.username}:definitely-wrong-pw@{parts.hostname}:{parts.port}"))
    try:
        psycopg.connect(wrong).close()
    except psycopg.OperationalError:
        pass
    else:
        pytest.skip("this server accepts any password (trust authentication): nothing to refuse")
    with pytest.raises(DatabaseError) as e:
        connect(wrong)
    assert e.value.sqlstate == "28P01" and not e.value.transient
    assert "definitely-wrong-pw" not in e.value.message


def test_a_running_row_whose_process_is_gone_is_abandoned_by_any_command_even_while_its_backend_lives(
        fresh_db: str) -> None:
    """A killed process whose connection the server still holds (a pooler, a half-open socket):
    its host, pid and start time tell it is gone, and status resolves it."""
    from kapman.ops import status

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    gone_pid = int(dead.stdout)
    with psycopg.connect(fresh_db, autocommit=True) as witness, psycopg.connect(fresh_db) as conn:
        witness.execute(
            "INSERT INTO ingest_runs (run_id, job, started_at, status, backend_pid, backend_start, process_host, "
            "process_pid, process_start) SELECT gen_random_uuid(), 'a2', now(), 'running', pg_backend_pid(), "
            "backend_start, %s, %s, %s FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            (runs.host(), gone_pid, runs.process_start(os.getpid())))
        alive = witness.execute("SELECT run_id FROM ingest_runs WHERE status = 'running'").fetchone()[0]  # type: ignore[index]
        report = status.report(conn, with_archive=False)
        assert report.check("runs").details["a2"]["status"] == "abandoned"
        assert report.check("runs").details["abandoned_now"] == {"a2": 1}
    assert _row(fresh_db, alive)[0] == "abandoned"
    # Our own live process is never taken for a dead one.
    with runs.recorded(fresh_db, "ohlcv") as mine:
        with psycopg.connect(fresh_db, autocommit=True) as other:
            assert runs.resolve_abandoned(other) == {}
        mine.result = StepResult("ohlcv")
