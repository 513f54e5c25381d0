"""Advisory locks: one nightly at a time, one run completing a session's option snapshot, and no A3 on a
snapshot an options run is still writing."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg

from kapman.db import runs
from kapman.db.connect import connect, unlock
from kapman.errors import KapManError, UsageError

log = logging.getLogger(__name__)

#: "nightly" in ASCII; advisory locks are per database, so one warehouse has one lock.
NIGHTLY_LOCK = 0x6E696768746C79


class AlreadyRunning(KapManError):
    """Another nightly holds the lock; this one did nothing."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another nightly run is in progress ({holder}); this one did nothing",
                         hint="wait for it to finish; the ledger shows it: SELECT * FROM ingest_runs "
                              "WHERE job = 'nightly' ORDER BY started_at DESC LIMIT 1")


_HOLDING = """
    SELECT a.pid, a.backend_start, a.client_addr::text, a.application_name
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database
                                                                  WHERE datname = current_database())
      AND l.classid = %s AND l.objid = %s AND l.objsubid = 1"""


def _parts(key: int) -> tuple[int, int]:
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


def _holder(conn: psycopg.Connection, key: int) -> str:
    row = conn.execute(_HOLDING, _parts(key)).fetchone()
    if row is None:
        return "the lock holder has just gone; run again"
    pid, since, addr, _ = row
    return f"database backend {pid}{' from ' + addr if addr else ''}, connected since {since:%Y-%m-%d %H:%M:%S %Z}"


#: The lock connection's application_name names the process behind it (host and start time hashed:
#: the server keeps 63 characters), so a later run can tell a holder whose process was killed (its
#: backend lingers until the server notices) from a live one.
_HOLDER_PREFIX = "kapman-nightly"
#: How long a lingering backend of a killed nightly is given to go once it is told to.
_LINGER_SECONDS = 5.0


@contextmanager
def exclusive(db_url: str, key: int = NIGHTLY_LOCK) -> Iterator[None]:
    """Hold the lock for the block, or raise AlreadyRunning at once (never wait for a live holder).

    A holder whose process, recorded on this host, is gone (kill -9: its backend lingers until the
    server notices the closed socket, which on a loaded server or across a network can take a while)
    is ended, and the lock taken."""
    conn = connect(db_url, autocommit=True)
    try:
        conn.execute("SELECT set_config('application_name', %s, false)", (holder_name(os.getpid()),))
        if not _take(conn, key):
            raise AlreadyRunning(_holder(conn, key))
        yield
    finally:
        _release(conn, "SELECT pg_advisory_unlock(%s)", (key,))


def _take(conn: psycopg.Connection, key: int) -> bool:
    if _try(conn, key):
        return True
    row = conn.execute(_HOLDING, _parts(key)).fetchone()
    if row is None:                     # the holder went between the two looks
        return _try(conn, key)
    if not _process_gone(row[3] or ""):
        return False                    # a live nightly, or one this host cannot judge
    log.warning("ending database backend %s of a nightly whose process is gone (%s)", row[0], row[3])
    conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
    deadline = time.monotonic() + _LINGER_SECONDS
    while time.monotonic() < deadline:
        if _try(conn, key):
            return True
        time.sleep(0.1)
    return False


def holder_name(pid: int) -> str:
    """The lock connection's name for process ``pid`` of this host."""
    start = runs.process_start(pid)
    return f"{_HOLDER_PREFIX} {_digest(runs.host())} {pid} {_digest(start) if start else '-'}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _process_gone(application_name: str) -> bool:
    """Whether a lock connection's name (``holder_name``) is a nightly's of this host that is gone."""
    words = application_name.split(" ")
    if len(words) != 4 or words[0] != _HOLDER_PREFIX or words[1] != _digest(runs.host()) \
            or not words[2].isdigit() or words[3] == "-":
        return False                    # not a nightly's, another host's, or one whose start was unknown
    return holder_name(int(words[2])) != application_name


def _try(conn: psycopg.Connection, key: int) -> bool:
    return bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])  # type: ignore[index]


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
        _release(conn, "SELECT pg_advisory_unlock_shared(%s::int4, %s::int4)", (OPTIONS_WRITING, day.toordinal()))


#: "oc": a run completing a session's snapshot (an options run without --symbols or --snapshot-time)
#: holds (OPTIONS_COMPLETING, ordinal) for the run: until it has its snapshot time on its ledger row, a
#: second one would not see it writing, and both would fetch every missing symbol.
OPTIONS_COMPLETING = 0x6F63


@contextmanager
def completing_session(db_url: str, day: date) -> Iterator[None]:
    """Held by an options run completing ``day``'s snapshot; UsageError at once if another holds it."""
    conn = connect(db_url, autocommit=True)
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)",
                           (OPTIONS_COMPLETING, day.toordinal())).fetchone()
        if not got or not got[0]:
            raise UsageError(f"another options run is completing {day}'s snapshot; this one did nothing",
                             hint="wait for it to end; a run after it fetches whatever it missed")
        yield
    finally:
        _release(conn, "SELECT pg_advisory_unlock(%s::int4, %s::int4)", (OPTIONS_COMPLETING, day.toordinal()))


def _release(conn: psycopg.Connection, statement: str, params: tuple[int, ...]) -> None:
    """Unlock (``connect.unlock``: A3 right after the options run, or the next nightly, found the
    lock of a closed connection still held), then close."""
    try:
        unlock(conn, statement, params)
    finally:
        conn.close()


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
