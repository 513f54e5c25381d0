"""Which clock the lifecycle follows, and the TimescaleDB policy jobs that go with it.

One clock: KapMan's (``KAPMAN_NOW`` or real time).  The database records it in
``lifecycle_clock`` (migration 0009), so the decision does not depend on the shell a command runs
in:

* ``real``: KapMan's clock is the wall clock.  On the community edition the built-in retention and
  compression policies are scheduled and count from the server's ``now()``, which agrees.
* ``frozen``: KapMan's clock sits more than a day from real time (the sandbox's 2025-12-19).  The
  policies still exist, with the same 730/120-day windows, but are paused
  (``alter_job(..., scheduled => false)``) and KapMan enforces the windows itself
  (``kapman.db.retention``) counting from ``frozen_at``, the newest instant KapMan's clock has shown
  the database.  A later command without ``KAPMAN_NOW`` counts from ``frozen_at`` too.

A database recorded ``real`` becomes ``frozen`` the first time a write runs with a clock frozen
away from real time; the way back is a rebuild on real time.  A clock ahead of real time is never
recorded (:func:`ahead_of_real_time`): a rebuild on one is refused, and a write counts from it
for itself only, and never drops or compresses by it (``kapman.db.retention``).  Bulk loads pause the policy jobs of
the tables they write with :func:`policies_paused`, so the jobs never race a COPY.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from kapman import clock
from kapman.db import schema
from kapman.db.connect import connect
from kapman.errors import UsageError

log = logging.getLogger(__name__)

POLICY_PROCS = ("policy_retention", "policy_compression")
#: The config key that holds each policy's window, and the function that adds the policy.
POLICY_WINDOW = {"policy_retention": "drop_after", "policy_compression": "compress_after"}
POLICY_ADD = {"policy_retention": "add_retention_policy", "policy_compression": "add_compression_policy"}
#: Every bulk loader holds this advisory lock shared while it runs; whoever can take it exclusively
#: is the last one out and puts the jobs back on the schedule the clock calls for.
PAUSE_LOCK_KEY = "kapman:lifecycle-pause"
#: How long a loader waits for a policy job that was already running when it paused them.
RUNNING_JOB_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Clock:
    """The clock a database's lifecycle follows."""

    mode: str                       # 'real' or 'frozen'
    frozen_at: datetime | None = None

    @property
    def policies_scheduled(self) -> bool:
        return self.mode == "real"

    def describe(self) -> str:
        if self.mode == "real":
            return "KapMan's clock is real time"
        assert self.frozen_at is not None
        return f"KapMan's clock is frozen at {self.frozen_at:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Now:
    """The instant lifecycle cutoffs count from, and where it came from."""

    instant: datetime
    source: str     # 'KAPMAN_NOW', 'real time', or 'recorded' (the database's frozen clock)

    def describe(self) -> str:
        day = clock.ny_date_of(self.instant)
        if self.source == "recorded":
            return f"{day}, the database's frozen clock (KAPMAN_NOW is unset here)"
        return f"{day}, {self.source}"


@dataclass(frozen=True)
class PolicyJob:
    job_id: int
    proc_name: str
    hypertable: str
    scheduled: bool


def process_clock() -> Clock:
    """The clock this process runs on, as the lifecycle sees it."""
    if clock.away_from_real_time():
        return Clock("frozen", clock.now())
    return Clock("real")


def ahead_of_real_time(instant: datetime | None) -> bool:
    """An instant of KapMan's clock later than real time (beyond the day's tolerance): a date that has
    not come.  The database never records one, and retention never counts from one: a typo (2052 for
    2025) would drop the whole warehouse."""
    return instant is not None and instant > clock.real_now() + clock.REAL_TIME_TOLERANCE


#: What mends a KapMan clock ahead of real time.
FUTURE_CLOCK_FIX = "fix or unset KAPMAN_NOW (a replayed day is in the past)"


def refuse_future_clock(what: str) -> None:
    """Raise UsageError when KapMan's clock runs ahead of real time and ``what`` would record it."""
    mine = process_clock()
    if ahead_of_real_time(mine.frozen_at):
        raise UsageError(f"KAPMAN_NOW ({mine.frozen_at:%Y-%m-%d %H:%M} UTC) is ahead of real time "
                         f"({clock.real_now():%Y-%m-%d %H:%M} UTC): {what} would record it as the database's "
                         "clock and count retention from a date that has not come; nothing changed",
                         hint=FUTURE_CLOCK_FIX)


def _has_clock_table(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('public.lifecycle_clock') IS NOT NULL").fetchone()
    return bool(row and row[0])


def read_clock(conn: psycopg.Connection) -> Clock:
    if not _has_clock_table(conn):
        return Clock("real")
    row = conn.execute("SELECT mode, frozen_at FROM public.lifecycle_clock").fetchone()
    return Clock(row[0], row[1]) if row else Clock("real")


def record_clock(conn: psycopg.Connection, recorded: Clock) -> None:
    """Write the clock the database follows and put the policy jobs on the matching schedule."""
    with conn.transaction():
        conn.execute("UPDATE public.lifecycle_clock SET mode = %s, frozen_at = %s, recorded_at = now()",
                     (recorded.mode, recorded.frozen_at))
        set_scheduled(conn, policy_jobs(conn), recorded.policies_scheduled)


def adopt_process_clock(conn: psycopg.Connection) -> Clock:
    """Before a write: a clock frozen away from real time freezes a ``real`` database (its policies
    are paused) and moves a frozen one's ``frozen_at`` forward.  Returns the clock now recorded."""
    recorded = read_clock(conn)
    mine = process_clock()
    if mine.mode != "frozen" or not _has_clock_table(conn):
        return recorded
    assert mine.frozen_at is not None
    if ahead_of_real_time(mine.frozen_at):   # this process counts from it (KAPMAN_NOW is explicit); later ones must not
        log.warning("KAPMAN_NOW (%s) is ahead of real time: not recorded as the database's clock", mine.frozen_at)
        return recorded
    if recorded.mode == "real" and holds_live_snapshots(conn):
        log.warning("KAPMAN_NOW (%s) is away from real time, but this database holds option snapshots taken "
                    "on real time: not recorded as its clock", mine.frozen_at)
        return recorded
    if recorded.mode == "real":
        log.info("KapMan's clock is frozen away from real time: the database's lifecycle follows it")
        record_clock(conn, mine)
        return mine
    if recorded.frozen_at is not None and mine.frozen_at > recorded.frozen_at:
        with conn.transaction():
            conn.execute("UPDATE public.lifecycle_clock SET frozen_at = %s, recorded_at = now()",
                         (mine.frozen_at,))
        return Clock("frozen", mine.frozen_at)
    return recorded


def holds_live_snapshots(conn: psycopg.Connection) -> bool:
    """Whether an options run took its snapshot on real time (its snapshot time within a day of its
    wall-clock start: the live API's, never a replayed day's).  Such a warehouse follows real time
    for good: frozen by a stray ``KAPMAN_NOW`` it would stay frozen, and every nightly of a shell
    without it would refuse to run, losing each session's snapshot."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM public.ingest_runs WHERE job = 'options' "
                       "AND snapshot_time IS NOT NULL AND abs(extract(epoch FROM snapshot_time - started_at)) < %s)",
                       (clock.REAL_TIME_TOLERANCE.total_seconds(),)).fetchone()
    return bool(row and row[0])


def effective_now(recorded: Clock) -> Now:
    """KapMan's clock for lifecycle cutoffs: ``KAPMAN_NOW`` where set; on a frozen database without
    it, the recorded clock (never the real date); else real time."""
    if clock.is_frozen():
        return Now(clock.now(), "KAPMAN_NOW")
    if recorded.mode == "frozen" and recorded.frozen_at is not None:
        return Now(recorded.frozen_at, "recorded")
    return Now(clock.real_now(), "real time")


def warehouse_now(conn: psycopg.Connection) -> datetime:
    """KapMan's clock for this warehouse: what status, the nightly, the reports, ``show`` and the
    dashboards (``public.kapman_now()``) count from.  ``KAPMAN_NOW`` where set; on a database that
    follows a frozen clock (the sandbox's), that clock; else real time."""
    return effective_now(read_clock(conn)).instant


def warehouse_today(conn: psycopg.Connection) -> date:
    """Today in New York by the warehouse's clock (``warehouse_now``)."""
    return clock.ny_date_of(warehouse_now(conn))


# --- policy jobs (community edition) ------------------------------------------------------------

def policy_jobs(conn: psycopg.Connection, tables: Sequence[str] = schema.LIFECYCLE_TABLES) -> list[PolicyJob]:
    """The retention and compression jobs of ``tables`` (none on the Apache edition)."""
    rows = conn.execute(
        "SELECT job_id, proc_name, hypertable_name, scheduled FROM timescaledb_information.jobs "
        "WHERE hypertable_schema = 'public' AND proc_name = ANY(%s) AND hypertable_name = ANY(%s) "
        "ORDER BY hypertable_name, proc_name", (list(POLICY_PROCS), list(tables))).fetchall()
    return [PolicyJob(*r) for r in rows]


def policy_interval(text: object) -> timedelta | None:
    """A policy's window as the jobs' config writes it ('730 days'); None for anything else."""
    match = re.fullmatch(r"(\d+) days?", text if isinstance(text, str) else "")
    return timedelta(days=int(match.group(1))) if match else None


def restore_window(job_id: int, proc_name: str, days: int) -> str:
    """SQL that puts a policy job's window back to ``days``, as printed (the policy's own check
    function validates the config)."""
    key = POLICY_WINDOW[proc_name]
    return (f"SELECT alter_job(job_id, config => jsonb_set(config, '{{{key}}}', '\"{days} days\"')) "
            f"FROM timescaledb_information.jobs WHERE job_id = {job_id}")


def add_policy(proc_name: str, table: str, days: int, *, scheduled: bool) -> str:
    """SQL that adds a missing policy back with the window the warehouse keeps, paused on a frozen
    clock (a scheduled one would count from the server's date)."""
    added = f"{POLICY_ADD[proc_name]}('public.{table}', {POLICY_WINDOW[proc_name]} => INTERVAL '{days} days')"
    return f"SELECT {added}" if scheduled else f"SELECT alter_job({added}, scheduled => false)"


def set_scheduled(conn: psycopg.Connection, jobs: Sequence[PolicyJob], scheduled: bool) -> None:
    for job in jobs:
        if job.scheduled != scheduled:
            conn.execute("SELECT alter_job(%s, scheduled => %s)", (job.job_id, scheduled))


def _running(conn: psycopg.Connection, jobs: Sequence[PolicyJob]) -> list[int]:
    rows = conn.execute("SELECT job_id FROM timescaledb_information.job_stats "
                        "WHERE job_id = ANY(%s) AND job_status = 'Running'",
                        ([j.job_id for j in jobs],)).fetchall()
    return [r[0] for r in rows]


def _wait_for_running(conn: psycopg.Connection, jobs: Sequence[PolicyJob], timeout: float) -> None:
    """A job that started before the pause keeps running; let it finish before the load begins."""
    deadline = time.monotonic() + timeout
    while running := _running(conn, jobs):
        if time.monotonic() >= deadline:
            log.warning("policy job(s) %s still running after %.0fs; loading anyway", running, timeout)
            return
        time.sleep(0.5)


def _lock_key(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT hashtextextended(%s, 0)", (PAUSE_LOCK_KEY,)).fetchone()
    return int(row[0]) if row else 0


def load_holds_pause(conn: psycopg.Connection) -> bool:
    """Whether a bulk loader is running with the policy jobs paused (it holds the pause lock shared);
    read from ``pg_locks``, so asking takes no lock.  A bigint advisory key is stored split in two."""
    key = _lock_key(conn)
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::bigint = %s AND objid::bigint = %s)", ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
    return bool(row and row[0])


def settle_schedule(conn: psycopg.Connection) -> bool:
    """Put every policy job on the schedule the recorded clock calls for, unless a loader holds
    the pause (then it will).  Repairs jobs left paused by a loader that was killed.  Returns
    whether it could."""
    key = _lock_key(conn)
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if not got or not got[0]:
        return False
    try:
        set_scheduled(conn, policy_jobs(conn), read_clock(conn).policies_scheduled)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return True


@contextmanager
def policies_paused(db_url: str, tables: Sequence[str] = schema.LIFECYCLE_TABLES, *,
                    wait: float = RUNNING_JOB_WAIT_SECONDS) -> Iterator[list[PolicyJob]]:
    """Pause the retention and compression jobs of ``tables`` for a bulk load, and put them back on
    the schedule the clock calls for afterwards, also after an error or Ctrl-C.

    Runs on a connection of its own, so a load that loses its connection still restores the
    schedule (on a fresh connection if this one died).  Concurrent loaders share the pause: the
    last one out restores it.  On the Apache edition there are no jobs and it does nothing but
    record a frozen clock (:func:`adopt_process_clock`).  Yields the jobs it paused."""
    conn = connect(db_url)
    paused: list[PolicyJob] = []
    key = None
    try:
        adopt_process_clock(conn)
        settle_schedule(conn)
        jobs = policy_jobs(conn, tables)
        if jobs:
            key = _lock_key(conn)
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
            paused = [j for j in jobs if j.scheduled]
            set_scheduled(conn, paused, False)
            _wait_for_running(conn, jobs, wait)
            log.info("paused %d policy job(s) for the load", len(paused))
        yield paused
    finally:
        if key is not None:
            _resume(conn, db_url, key)
        conn.close()


def _resume(conn: psycopg.Connection, db_url: str, key: int) -> None:
    try:
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))
        settle_schedule(conn)
        return
    except psycopg.Error:
        pass          # the connection died with the load; its shared lock went with it
    try:
        with connect(db_url) as fresh:
            settle_schedule(fresh)
    except Exception as exc:  # noqa: BLE001 - never hide the load's own outcome
        log.warning("could not put the policy jobs back on schedule (%s); the next run will", exc)


def describe(retention_mode: str, recorded: Clock) -> str:
    """One truthful line on who keeps the 730/120-day windows, and on which clock."""
    days, compress = schema.RETENTION.days, schema.COMPRESS_AFTER.days
    if retention_mode == "policy" and recorded.policies_scheduled:
        return (f"lifecycle: TimescaleDB policies scheduled (retention {days} days, compression after "
                f"{compress} days), on the server's clock, which is KapMan's")
    if retention_mode == "policy":
        return (f"lifecycle: TimescaleDB policies (retention {days} days, compression after {compress} days) "
                f"paused: {recorded.describe()}; KapMan enforces the same windows on its clock after each "
                "successful run")
    return (f"lifecycle: retention ({days} days) enforced by KapMan on its clock after each successful run "
            f"({recorded.describe()}); compression unavailable (Apache edition)")
