"""The ``ingest_runs`` ledger: one row per run of any step, that never claims more than happened.

``recorded`` is the one way a step writes it.  The row is opened on a connection of the ledger's
own, which stays open for the whole run: its backend is the witness that the run is alive.  At
the end the row gets the outcome of the step's result, ``interrupted`` on Ctrl-C, or ``failed``
with the error class on an exception; if the step's database connection (or the ledger's) was
lost, a fresh connection records it.  A row left ``running`` by a run that was killed without a
word is marked ``abandoned`` by the next run of the same step, once no backend holds it.

Times: ``started_at``/``finished_at`` are wall-clock time, so durations are real even when
KapMan's clock is frozen (``KAPMAN_NOW``); ``clock_started_at``/``clock_finished_at`` are
KapMan's clock beside them.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from kapman import clock
from kapman.config import mask_url
from kapman.errors import KapManError
from kapman.step import StepResult

log = logging.getLogger(__name__)

#: Ledger summaries are capped (see kapman.step); the error text is too.
ERROR_CHARS = 2000


@dataclass
class Run:
    run_id: uuid.UUID
    job: str
    result: StepResult | None = None
    abandoned: int = 0      # stale rows of this job marked abandoned when this run started


def _wall() -> datetime:
    return datetime.now(UTC)


def masked_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as they go into the ledger: URL-like values masked, everything JSON-safe."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, str) and "://" in value:
            value = mask_url(value)
        out[key] = value
    return json.loads(json.dumps(out, default=str))


def _connect(url: str) -> psycopg.Connection:
    from kapman.db.connect import connect

    return connect(url, autocommit=True)


def mark_abandoned(conn: psycopg.Connection, job: str) -> int:
    """Rows of ``job`` still 'running' whose backend is gone: the run was killed. Returns how many."""
    rows = conn.execute(
        """UPDATE public.ingest_runs r SET status = 'abandoned', finished_at = %s,
                  error = coalesce(r.error, 'the process ended without recording an outcome')
            WHERE r.job = %s AND r.status = 'running'
              AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                               WHERE a.pid = r.backend_pid AND a.backend_start = r.backend_start)
        RETURNING r.run_id""", (_wall(), job)).fetchall()
    return len(rows)


def _start(conn: psycopg.Connection, job: str, args: Mapping[str, Any],
           snapshot_time: datetime | None) -> Run:
    run = Run(uuid.uuid4(), job)
    run.abandoned = mark_abandoned(conn, job)
    conn.execute(
        """INSERT INTO public.ingest_runs (run_id, job, started_at, clock_started_at, snapshot_time, args,
                                          backend_pid, backend_start)
           SELECT %s, %s, %s, %s, %s, %s, pg_backend_pid(), a.backend_start
             FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()""",
        (run.run_id, job, _wall(), clock.now(), snapshot_time, json.dumps(masked_args(args))))
    return run


def _finish(conn: psycopg.Connection, run: Run, status: str, summary: dict[str, Any] | None,
            error: str | None) -> None:
    conn.execute(
        """UPDATE public.ingest_runs SET finished_at = %s, clock_finished_at = %s, status = %s,
                  summary = %s, error = %s
            WHERE run_id = %s""",
        (_wall(), clock.now(), status, json.dumps(summary, default=str) if summary is not None else None,
         error[:ERROR_CHARS] if error else None, run.run_id))


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, KapManError) else (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def recorded(db_url: str, job: str, args: Mapping[str, Any] | None = None,
             snapshot_time: datetime | None = None) -> Iterator[Run]:
    """Record one run of ``job``; set ``run.result`` before the block ends."""
    conn = _connect(db_url)
    try:
        run = _start(conn, job, args or {}, snapshot_time)
    except BaseException:
        conn.close()
        raise
    if run.abandoned:
        log.warning("%d earlier %s run(s) ended without recording an outcome; marked abandoned",
                    run.abandoned, job)
    status, summary, error = "failed", None, None
    try:
        yield run
        if run.result is None:
            error = "the step returned no result"
        else:
            run.result.stop_clock()
            status, summary = run.result.outcome.value, run.result.as_dict()
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted (Ctrl-C or SIGTERM)"
        if run.result is not None:
            summary = run.result.stop_clock().as_dict()
        raise
    except BaseException as exc:
        error = _describe(exc)
        if run.result is not None:
            summary = run.result.stop_clock().as_dict()
        raise
    finally:
        _record_finish(db_url, conn, run, status, summary, error)


def _record_finish(db_url: str, conn: psycopg.Connection, run: Run, status: str,
                   summary: dict[str, Any] | None, error: str | None) -> None:
    """Finish the row on the ledger's connection, or a fresh one when that one is gone."""
    try:
        _finish(conn, run, status, summary, error)
        return
    except psycopg.Error:
        log.debug("ledger connection lost; recording run %s on a fresh connection", run.run_id)
    finally:
        with suppress(Exception):
            conn.close()
    try:
        with _connect(db_url) as fresh:
            _finish(fresh, run, status, summary, error)
    except Exception as exc:  # the run's own error matters more than the ledger's
        log.warning("could not record the outcome of %s run %s: %s", run.job, run.run_id,
                    type(exc).__name__)
