"""The ``ingest_runs`` ledger: one row per run of any step, that never claims more than happened.

``recorded`` is the one way a step writes it.  The row is opened on a connection of the ledger's
own, which stays open for the whole run: its backend is the witness that the run is alive.  At
the end the row gets the outcome of the step's result, ``interrupted`` on Ctrl-C, or ``failed``
with the error class on an exception; if the step's database connection (or the ledger's) was
lost, a fresh connection records it.  SIGTERM and SIGHUP arrive as a ``KeyboardInterrupt``
(``kapman.signals``) and are recorded ``interrupted`` like Ctrl-C, with what was committed.

A row left ``running`` by a run killed without a word (kill -9, a lost machine) is marked
``abandoned`` by the next command of any kind that reads the ledger (every step, the nightly,
status): its process is gone when its backend has ended, or, on the host that ran it, when no
process with its pid and start time is alive (``process_host``/``process_pid``/``process_start``).

Times: ``started_at``/``finished_at`` are wall-clock time, so durations are real even when
KapMan's clock is frozen (``KAPMAN_NOW``); ``clock_started_at``/``clock_finished_at`` are
KapMan's clock beside them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from kapman import clock, signals
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
    conn: psycopg.Connection | None = field(default=None, repr=False)   # the ledger's own connection

    def decided(self, *, snapshot_time: datetime | None = None, args: Mapping[str, Any] | None = None) -> None:
        """What the step decided once it began, on its row: the snapshot time it takes (which the
        server's clock tells), the request as resolved (the symbols of the scope)."""
        assert self.conn is not None, "decided() is for a run being recorded"
        self.conn.execute("UPDATE public.ingest_runs SET snapshot_time = coalesce(%s, snapshot_time), "
                          "args = coalesce(%s, args) WHERE run_id = %s",
                          (snapshot_time, json.dumps(masked_args(args)) if args is not None else None, self.run_id))


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


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """'<boot id>:<start tick>' of a live process, None when it is gone (or not on Linux)."""
    boot = _boot_id()
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22, counted after the command name (which may hold spaces) closes with ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return f"{boot}:{fields[19]}" if boot and len(fields) > 19 else None


def host() -> str:
    return socket.gethostname()


def dead_here(where: str | None, pid: int | None, start: str | None) -> bool:
    """A process recorded on this host that is no longer alive (a pid reused since is not it)."""
    if where != host() or pid is None or start is None:
        return False
    return process_start(pid) != start


_ABANDON = """
    UPDATE public.ingest_runs r SET status = 'abandoned', finished_at = %s,
           error = coalesce(r.error, 'the process ended without recording an outcome')
     WHERE r.status = 'running' AND (r.run_id = ANY(%s) OR NOT EXISTS (
           SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid AND a.backend_start = r.backend_start))
    RETURNING r.job"""


def resolve_abandoned(conn: psycopg.Connection) -> dict[str, int]:
    """Mark 'abandoned' every 'running' row, of any job, whose process is gone; returns how many per
    job.  Cheap (a partial index on running rows): every command that reads the ledger calls it."""
    running = conn.execute("SELECT run_id, process_host, process_pid, process_start FROM public.ingest_runs "
                           "WHERE status = 'running'").fetchall()
    if not running:
        return {}
    dead = [run_id for run_id, host, pid, start in running if dead_here(host, pid, start)]
    jobs: dict[str, int] = {}
    with conn.transaction():
        for (job,) in conn.execute(_ABANDON, (_wall(), dead)).fetchall():
            jobs[job] = jobs.get(job, 0) + 1
    if jobs:
        log.warning("runs ended without recording an outcome, marked abandoned: %s",
                    ", ".join(f"{job} {n}" for job, n in sorted(jobs.items())))
    return jobs


def _start(conn: psycopg.Connection, job: str, args: Mapping[str, Any],
           snapshot_time: datetime | None) -> Run:
    run = Run(uuid.uuid4(), job)
    run.abandoned = resolve_abandoned(conn).get(job, 0)
    pid = os.getpid()
    conn.execute(
        """INSERT INTO public.ingest_runs (run_id, job, started_at, clock_started_at, snapshot_time, args,
                                          backend_pid, backend_start, process_host, process_pid, process_start)
           SELECT %s, %s, %s, %s, %s, %s, pg_backend_pid(), a.backend_start, %s, %s, %s
             FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()""",
        (run.run_id, job, _wall(), clock.now(), snapshot_time, json.dumps(masked_args(args)),
         host(), pid, process_start(pid)))
    return run


def _finish(conn: psycopg.Connection, run: Run, status: str, summary: dict[str, Any] | None,
            error: str | None) -> None:
    conn.execute(
        """UPDATE public.ingest_runs SET finished_at = %s, clock_finished_at = %s, status = %s,
                  summary = %s, error = %s
            WHERE run_id = %s""",
        (_wall(), clock.now(), status, json.dumps(summary, default=str) if summary is not None else None,
         error[:ERROR_CHARS] if error else None, run.run_id))


def _ended(result: StepResult | None, status: str, exit_code: int) -> dict[str, Any] | None:
    """What a run stopped by an interruption or an error had done, under the row's status and the
    exit code the command ended with: the result's own would say ``ok`` and 0 (nothing failed yet)."""
    if result is None:
        return None
    return {**result.stop_clock().as_dict(), "status": status, "exit_code": exit_code}


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
        run.conn = conn
    except BaseException:
        conn.close()
        raise
    status, summary, error = "failed", None, None
    try:
        yield run
        if run.result is None:
            error = "the step returned no result"
        else:
            run.result.stop_clock()
            status, summary = run.result.outcome.value, run.result.as_dict()
    except KeyboardInterrupt as exc:
        status, error = "interrupted", signals.describe(exc)
        summary = _ended(run.result, status, signals.exit_code(exc))
        raise
    except BaseException as exc:
        error = _describe(exc)
        summary = _ended(run.result, status, exc.exit_code if isinstance(exc, KapManError) else 2)
        raise
    finally:
        _record_finish(db_url, conn, run, status, summary, error)


def record_after(db_url: str, job: str, args: Mapping[str, Any], result: Any, started_at: datetime,
                 clock_started_at: datetime) -> None:
    """Record a run that is already over, begun at ``started_at`` (KapMan's clock: ``clock_started_at``).

    The rebuild and the upgrade change the database the ledger lives in (the rebuild makes it, a
    migration may alter its table), so each records its run once its work is done."""
    with recorded(db_url, job, args) as run:
        run.result = result
    conn = _connect(db_url)
    try:
        conn.execute("UPDATE public.ingest_runs SET started_at = %s, clock_started_at = %s WHERE run_id = %s",
                     (started_at, clock_started_at, run.run_id))
    finally:
        conn.close()


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
