"""Classify database failures once, by SQLSTATE class.

08 (connection), 40 (transaction rollback: serialization, deadlock), 53 (insufficient
resources) and 57P (operator intervention, e.g. admin shutdown) are transient; everything else
(22 data, 23 integrity, 42 syntax/privilege, ...) is terminal.
"""

from __future__ import annotations

import psycopg

from kapman.errors import DatabaseError

TRANSIENT_CLASSES = ("08", "40", "53", "57P")


def is_transient_sqlstate(sqlstate: str | None) -> bool:
    return bool(sqlstate) and sqlstate.startswith(TRANSIENT_CLASSES)  # type: ignore[union-attr]


def wrap(exc: psycopg.Error, doing: str) -> DatabaseError:
    """A DatabaseError naming what we were doing, the server's message and constraint."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    primary = (diag.message_primary if diag else None) or str(exc).strip().splitlines()[0]
    parts = [f"{doing} failed: {primary}"]
    if diag is not None and diag.constraint_name:
        parts.append(f"(constraint {diag.constraint_name})")
    if sqlstate:
        parts.append(f"[SQLSTATE {sqlstate}]")
    return DatabaseError(" ".join(parts), sqlstate=sqlstate, transient=is_transient_sqlstate(sqlstate))
