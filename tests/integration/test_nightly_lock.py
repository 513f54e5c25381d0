"""The nightly's lock: a live holder refuses a second nightly at once; the lingering backend of a
nightly whose process was killed does not."""

from __future__ import annotations

import os

import psycopg
import pytest

from kapman.ops import lock

pytestmark = pytest.mark.integration


def _holding(url: str, name: str) -> psycopg.Connection:
    """A session holding the nightly's lock under ``name`` (as a nightly's lock connection calls itself)."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SELECT set_config('application_name', %s, false)", (name,))
    conn.execute("SELECT pg_advisory_lock(%s)", (lock.NIGHTLY_LOCK,))
    return conn


def test_a_killed_nightlys_lingering_backend_is_ended_and_the_lock_taken(fresh_db: str) -> None:
    """kill -9 leaves the backend until the server notices the closed socket (seen in a loaded run: the
    next nightly said "another nightly run is in progress" for a process that no longer existed)."""
    gone = _holding(fresh_db, lock.holder_name(os.getpid()).replace(f" {os.getpid()} ", " 999999 "))  # gone
    try:
        with lock.exclusive(fresh_db):
            with psycopg.connect(fresh_db) as c:
                # this database's holders only: pg_locks shows every database of the server
                holders = c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                    "AND objid = %s AND database = (SELECT oid FROM pg_database "
                                    "WHERE datname = current_database())",
                                    (lock.NIGHTLY_LOCK & 0xFFFFFFFF,)).fetchone()
            assert holders == (1,)
        with pytest.raises(psycopg.OperationalError):
            gone.execute("SELECT 1")
    finally:
        gone.close()


@pytest.mark.parametrize("who", ["this process", "another host"])
def test_a_live_holder_or_one_this_host_cannot_judge_refuses_at_once(fresh_db: str, who: str) -> None:
    pid = os.getpid()
    name = lock.holder_name(pid) if who == "this process" else \
        lock.holder_name(pid).replace(lock.holder_name(pid).split(" ")[1], "0123456789ab")   # another host
    holder = _holding(fresh_db, name)
    try:
        with pytest.raises(lock.AlreadyRunning, match=r"another nightly run is in progress \(database backend"):
            with lock.exclusive(fresh_db):
                pass
        assert holder.execute("SELECT 1").fetchone() == (1,)     # left alone
    finally:
        holder.close()
