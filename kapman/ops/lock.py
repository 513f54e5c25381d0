"""Advisory locks: one nightly at a time, and no A3 on a snapshot an options run is still writing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg

from kapman.db.connect import connect
from kapman.errors import KapManError

#: "nightly" in ASCII; advisory locks are per database, so one warehouse has one lock.
NIGHTLY_LOCK = 0x6E696768746C79


class AlreadyRunning(KapManError):
    """Another nightly holds the lock; this one did nothing."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another nightly run is in progress ({holder}); this one did nothing",
                         hint="wait for it to finish; the ledger shows it: SELECT * FROM ingest_runs "
                              "WHERE job = 'nightly' ORDER BY started_at DESC LIMIT 1")


def _holder(conn: psycopg.Connection, key: int) -> str:
    row = conn.execute("""
        SELECT a.pid, a.backend_start, a.client_addr::text
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database
                                                                      WHERE datname = current_database())
          AND l.classid = %s AND l.objid = %s AND l.objsubid = 1""",
                       ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
    if row is None:
        return "the lock holder has just gone; run again"
    pid, since, addr = row
    return f"database backend {pid}{' from ' + addr if addr else ''}, connected since {since:%Y-%m-%d %H:%M:%S %Z}"


@contextmanager
def exclusive(db_url: str, key: int = NIGHTLY_LOCK) -> Iterator[None]:
    """Hold the lock for the block, or raise AlreadyRunning at once (never wait)."""
    conn = connect(db_url, autocommit=True)
    try:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
            raise AlreadyRunning(_holder(conn, key))
        yield
    finally:
        conn.close()    # ends the session, which releases the lock even if unlock never ran


#: "ow": an options run writing a New York day's snapshot holds (OPTIONS_WRITING, ordinal) shared;
#: A3 takes it exclusively for the dates it computes, so it never reads a half-written snapshot.
OPTIONS_WRITING = 0x6F77


@contextmanager
def writing_snapshot(db_url: str, day: date) -> Iterator[None]:
    """Held by an options run while it writes ``day``'s chains (waits for an A3 of that day to end)."""
    conn = connect(db_url, autocommit=True)
    try:
        conn.execute("SELECT pg_advisory_lock_shared(%s::int4, %s::int4)", (OPTIONS_WRITING, day.toordinal()))
        yield
    finally:
        conn.close()    # releases the lock, also when the process is killed


def claim_days(conn: psycopg.Connection, days: list[date]) -> tuple[list[date], list[date]]:
    """Take the writing lock of each day exclusively on ``conn`` (session-level, released by
    ``release_days`` or the connection's end): (the days claimed, the days an options run is writing)."""
    got: dict[int, bool] = dict(conn.execute("SELECT d, pg_try_advisory_lock(%s::int4, d) FROM unnest(%s::int4[]) AS d",
                                              (OPTIONS_WRITING, [d.toordinal() for d in days])).fetchall())
    return [d for d in days if got[d.toordinal()]], [d for d in days if not got[d.toordinal()]]


def release_days(conn: psycopg.Connection, days: list[date]) -> None:
    """Give the days back; on a connection that failed, its end gives them back instead."""
    if not days or conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        return
    conn.execute("SELECT pg_advisory_unlock(%s::int4, d) FROM unnest(%s::int4[]) AS d",
                 (OPTIONS_WRITING, [d.toordinal() for d in days]))
