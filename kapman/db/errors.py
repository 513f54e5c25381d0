"""Classify database failures once, by SQLSTATE class.

08 (connection), 40 (transaction rollback: serialization, deadlock), 53 (insufficient
resources) and 57P (operator intervention, e.g. admin shutdown) are transient; everything else
(22 data, 23 integrity, 42 syntax/privilege, ...) is terminal.  ``classify`` is what the CLI
applies at the step boundary to any psycopg error a step lets through; steps that know how far
they got raise ``ConnectionLost`` themselves.
"""

from __future__ import annotations

import psycopg

from kapman import registry
from kapman.errors import ConnectionLost, DatabaseError

TRANSIENT_CLASSES = ("08", "40", "53", "57P")
#: Connection failure: libpq reports a dropped socket without any SQLSTATE.
CONNECTION_CLASSES = ("08", "57P")

REBUILD = registry.mend("rebuild")

#: SQLSTATEs with a fix of their own.
HINTS = {
    "42P01": f"the schema is missing or out of date: run {REBUILD}",
    "42703": f"the schema is out of date: run {REBUILD}",
    "3F000": f"the schema is missing: run {REBUILD}",
    "42501": "the database user lacks a privilege this step needs; connect as the database owner",
    "53100": "the database server's disk is full; free space and rerun",
    "53200": "the database server ran out of memory; rerun with fewer workers",
    "57014": "the statement was cancelled (statement_timeout or an operator); rerun",
    "40001": "a concurrent transaction conflicted; rerun",
    "40P01": "a deadlock with another session; rerun",
}


def is_transient_sqlstate(sqlstate: str | None) -> bool:
    return bool(sqlstate) and sqlstate.startswith(TRANSIENT_CLASSES)  # type: ignore[union-attr]


def is_connection_lost(exc: BaseException) -> bool:
    """A dropped connection: an OperationalError without SQLSTATE, or class 08 / 57P."""
    if not isinstance(exc, psycopg.Error):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(CONNECTION_CLASSES)
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _primary(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    if not primary:
        lines = str(exc).strip().splitlines()
        primary = lines[0] if lines else type(exc).__name__
    return primary


def wrap(exc: psycopg.Error, doing: str) -> DatabaseError:
    """A DatabaseError naming what we were doing, the server's message and constraint; a dropped
    connection is ``ConnectionLost`` (kapman.execute says how far the step got)."""
    if is_connection_lost(exc):
        return ConnectionLost()
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    parts = [f"{doing} failed: {_primary(exc)}"]
    if diag is not None and diag.constraint_name:
        parts.append(f"(constraint {diag.constraint_name})")
    if sqlstate:
        parts.append(f"[SQLSTATE {sqlstate}]")
    return DatabaseError(" ".join(parts), sqlstate=sqlstate, transient=is_transient_sqlstate(sqlstate),
                         hint=HINTS.get(sqlstate or ""))


def classify(exc: psycopg.Error) -> DatabaseError:
    """The one-line error for a psycopg error that reached the step boundary."""
    return wrap(exc, "a database operation")
