"""Writing one symbol's snapshot: one transaction that leaves exactly the new chain in the table.

The first write of a (snapshot time, underlying) is a straight COPY into ``options_chains``; a
rerun under the same snapshot time replaces that snapshot: rows are merged on the table's key
and the contracts absent from the new chain are deleted and counted (``removed``), so a snapshot
is always one coherent chain, never two chains' rows mixed (``bulk.write_group``).  Only a chain
fetched whole with every contract checked may remove anything (``removes``): when a contract was
refused (``malformed``), its stored row must not go on the strength of that response, so the
rerun merges and removes nothing.  A contract holding a value that could not be read as a number
(``unreadable``) keeps its stored row on a rerun: that value must not overwrite the stored one, and
the row stays one response's; the run counts it (``held``).  A first write stores it as read (the
unreadable values NULL), as nothing is stored to keep.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

from kapman.db import bulk, schema
from kapman.ingest.options.normalise import COLUMNS
from kapman.ingest.options.process import EncodedChain

#: First key of the per-(underlying, snapshot) advisory lock: "op" for options.
LOCK_CLASS = 0x6F70


def write_chain(conn: psycopg.Connection, chain: EncodedChain) -> bulk.MergeCounts:
    """``chain``'s rows as the whole snapshot of its underlying at its time, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        if conn.info.encoding != "utf-8":
            cur.execute("SET LOCAL client_encoding TO 'UTF8'")  # the payload's text is UTF-8
        return bulk.write_group(
            cur, target="options_chains", columns=COLUMNS, payload=chain.payload, rows=chain.rows,
            group={"time": chain.snapshot_time, "ticker_id": chain.ticker_id}, lock_class=LOCK_CLASS,
            key=schema.OPTIONS_KEY, replace=removes(chain), hold=chain.unreadable,
        )


def removes(chain: EncodedChain) -> bool:
    """Whether ``chain`` may remove stored contracts it lacks: none of its contracts was refused."""
    return not chain.dropped.get("malformed")


def clear_chain(conn: psycopg.Connection, snapshot_time: datetime, ticker_id: UUID) -> int:
    """Remove a snapshot that a rerun found empty; returns the rows removed (usually none)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, f"{snapshot_time}@{ticker_id}"))
        cur.execute("DELETE FROM public.options_chains WHERE time = %s AND ticker_id = %s", (snapshot_time, ticker_id))
        return cur.rowcount
