"""The ``ingest_runs`` ledger: one row per job run, with its arguments and summary."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg

from kapman import clock


def start_run(conn: psycopg.Connection, job: str, args: dict[str, Any],
              snapshot_time: datetime | None = None) -> uuid.UUID:
    run_id = uuid.uuid4()
    with conn.transaction():
        conn.execute("INSERT INTO public.ingest_runs (run_id, job, started_at, snapshot_time, args) "
                     "VALUES (%s, %s, %s, %s, %s)",
                     (run_id, job, clock.now(), snapshot_time, json.dumps(args, default=str)))
    return run_id


def finish_run(conn: psycopg.Connection, run_id: uuid.UUID, status: str, summary: dict[str, Any]) -> None:
    with conn.transaction():
        conn.execute("UPDATE public.ingest_runs SET finished_at = %s, status = %s, summary = %s "
                     "WHERE run_id = %s",
                     (clock.now(), status, json.dumps(summary, default=str), run_id))
