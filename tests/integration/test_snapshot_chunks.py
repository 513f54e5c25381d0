"""snapshots.create_chunks: the chunks of new dates made before parallel writers start, and nothing else."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest

from kapman.clock import close_of
from kapman.db import chunks
from kapman.jobs import snapshots

pytestmark = pytest.mark.integration

# three 7-day chunks' worth of dates, the middle week already holding a row
DATES = [date(2025, 11, 17), date(2025, 11, 18), date(2025, 11, 25), date(2025, 12, 2), date(2025, 12, 3)]


def test_only_the_missing_chunks_are_made_and_no_row_is_left(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        real = uuid.uuid4()
        conn.execute("INSERT INTO daily_snapshots (time, ticker_id) VALUES (%s, %s)", (close_of(DATES[2]), real))
        before = chunks.chunks(conn, "daily_snapshots")
        assert len(before) == 1
        made = snapshots.create_chunks(conn, [close_of(d) for d in DATES])
        after = chunks.chunks(conn, "daily_snapshots")
        rows = conn.execute("SELECT ticker_id FROM daily_snapshots").fetchall()
        again = snapshots.create_chunks(conn, [close_of(d) for d in DATES])
    assert made == 4                 # every time outside the one chunk there was
    assert len(after) == 3 and all(chunks.covering(after, [c.start for c in after], d) is not None for d in DATES)
    assert rows == [(real,)] and again == 0


def test_inside_an_open_transaction_it_makes_nothing(fresh_db: str) -> None:
    """Its chunks' lock would last to the caller's commit, making the writers wait for it: it leaves them be."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute("SELECT 1")
        assert snapshots.create_chunks(conn, [close_of(DATES[0])]) == 0
        conn.rollback()
        assert chunks.chunks(conn, "daily_snapshots") == []
