"""One nightly at a time: a session-level advisory lock held on a connection of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
