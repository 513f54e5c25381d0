"""The nightly's lock: a live holder refuses a second nightly at once; the lingering backend of a
nightly whose process was killed does not."""

from __future__ import annotations

import os

import psycopg
import pytest

from kapman.ops import lock
from tests.support.sessions import slow_to_end

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
                holders = c.execute(   # pg_locks is the server's: other databases' nightlies hold the key too
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
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



@pytest.mark.parametrize("hold", ["writing_snapshot", "exclusive"])
def test_a_lock_is_free_when_its_block_ends_not_when_the_server_ends_the_session(
        fresh_db: str, hold: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A3 right after the options run (and the next nightly right after one) found the lock still held
    by a session the server had not ended yet: A3 then skipped the day as being written."""
    from datetime import date

    opened: list[psycopg.Connection] = []
    monkeypatch.setattr(lock, "connect", slow_to_end(opened))
    day = date(2025, 12, 19)
    try:
        with lock.writing_snapshot(fresh_db, day) if hold == "writing_snapshot" else lock.exclusive(fresh_db):
            pass
        with psycopg.connect(fresh_db, autocommit=True) as other:
            if hold == "writing_snapshot":
                claimed, busy = lock.claim_days(other, [day])
                assert claimed == [day] and busy == []
            else:
                assert other.execute("SELECT pg_try_advisory_lock(%s)", (lock.NIGHTLY_LOCK,)).fetchone() == (True,)
    finally:
        for conn in opened:
            conn.close()
