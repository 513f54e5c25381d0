"""Which stored option chains the archive really holds: every stored chain (one snapshot of one
underlying) checked against an archived file of the same rows, to a chosen ``Depth``:

- ``ROWS``: a manifest of this warehouse lists the chain's file with the stored row count and latest
  ``updated_at`` (every KapMan writer sets it on a row it changes), and the file is in the store with
  the manifest's size.  Reads manifests, the store's listing and one aggregate of the table; an
  options run's catch-up reads them only for the snapshots that could need archiving
  (``kapman.archive.checkpoint``), and so re-archives chains a run left out, a file deleted or
  truncated, and chains written since they were archived, in time that does not grow with history.
- ``FILES``: also every file read and its SHA-256 compared with the manifest's: what the repave
  prompt counts (file present, its hash, its rows), since a repave destroys what it misses.
- ``CONTENT``: also every stored row read (binary COPY), every file verified as the restore verifies
  it (columns, rows, snapshot, underlying, the manifest's content hash), and the hash of the rows
  the file holds compared with the stored rows': the full verification, which a manifest edited to
  match a changed file does not pass.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any
from uuid import UUID

import psycopg

from kapman.archive import decode, manifest, table
from kapman.archive.checkpoint import EVERYTHING, Window
from kapman.archive.manifest import Manifest, file_name
from kapman.archive.store import ArchiveError, Store
from kapman.archive.warehouse import Warehouse
from kapman.clock import ny_date_of

log = logging.getLogger(__name__)


class Depth(IntEnum):
    ROWS = 1
    FILES = 2
    CONTENT = 3


@dataclass
class Coverage:
    location: str
    chains: int = 0           # stored chains: distinct (snapshot time, underlying)
    covered: int = 0          # of which the archive holds the same rows (verified as asked)
    snapshots: int = 0        # stored snapshots (of the scope checked)
    archived: int = 0         # this warehouse's manifests in the store
    depth: Depth = field(default_factory=lambda: Depth.ROWS)
    problems: dict[datetime, dict[UUID, str]] = field(default_factory=dict)  # what is not covered, and why
    #: Stored snapshots without a manifest of this warehouse whose manifest there is another's (its
    #: name): an export will not overwrite it, so only a store of this warehouse's own archives them.
    others: dict[datetime, str] = field(default_factory=dict)
    checked: list[datetime] = field(default_factory=list)  # the stored snapshots examined

    @property
    def uncovered(self) -> int:
        return self.chains - self.covered

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for chains in self.problems.values():
            for why in chains.values():
                out[why.split(":")[0]] += 1
        return dict(out)

    def line(self) -> str:
        how = {Depth.ROWS: "rows", Depth.FILES: "rows and file hashes",
               Depth.CONTENT: "rows, file hashes and stored rows' hashes"}[self.depth]
        if not self.uncovered:
            return f"all {self.chains:,} stored option chains are archived at {self.location} (checked: {how})"
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons().items()))
        return (f"{self.uncovered:,} of {self.chains:,} stored option chains are NOT in the archive at "
                f"{self.location} ({why}; checked: {how})")


def stored_chains(conn: psycopg.Connection, skip: Collection[datetime] = (), scope: Window = EVERYTHING
                  ) -> dict[datetime, dict[UUID, tuple[int, datetime]]]:
    """Rows and the latest ``updated_at`` per underlying of every stored snapshot in ``scope`` but
    ``skip``.  A bounded scope reads only its snapshots' chunks: its start as a range on ``time``
    (the hypertable's partitioning column), its other snapshots by their times."""
    out: dict[datetime, dict[UUID, tuple[int, datetime]]] = defaultdict(dict)
    aggregate = ("SELECT time, ticker_id, count(*), max(updated_at) FROM public.options_chains "
                 "WHERE time <> ALL(%s) AND {} GROUP BY 1, 2")
    queries: list[tuple[str, tuple[Any, ...]]]
    if scope.everything:
        queries = [(aggregate.format("true"), (list(skip),))]
    else:
        queries = [(aggregate.format("time >= %s"), (list(skip), scope.since))]
        older = [t for t in scope.also if t < scope.since]  # type: ignore[operator]
        if older:
            queries.append((aggregate.format("time = ANY(%s)"), (list(skip), older)))
    for query, params in queries:
        for time, ticker_id, rows, updated in conn.execute(query, params).fetchall():
            out[time][ticker_id] = (int(rows), updated)
    return dict(out)


def manifests(store: Store, owner: Warehouse, keys: list[str],
              others: dict[datetime, str] | None = None) -> dict[datetime, Manifest]:
    """This warehouse's readable manifests among ``keys``, by snapshot time (format-1 manifests,
    which name no warehouse, count as this warehouse's: they were written before warehouses).
    ``others`` collects the snapshot times whose manifest another warehouse wrote."""
    out: dict[datetime, Manifest] = {}
    for key in keys:
        if manifest.partition_date(key) is None:
            continue
        try:
            found = Manifest.load(store, key)
        except ValueError as exc:
            log.warning("%s: %s; its files are not counted as archived", key, exc)
            continue
        if found.warehouse not in (None, owner.name):
            if others is not None and found.warehouse is not None:
                others[found.snapshot_time] = found.warehouse
            continue
        earlier = out.get(found.snapshot_time)
        if earlier is None or earlier.warehouse is None:  # a format-2 manifest over a format-1 one
            out[found.snapshot_time] = found
    return out


def stored_contents(conn: psycopg.Connection, snapshot: datetime) -> dict[UUID, str]:
    """Each underlying's content hash (``manifest``) of one stored snapshot, as the export computes it."""
    from kapman.archive.export import copy_snapshot
    from kapman.archive.table import runs

    body, starts = decode.rows_of(copy_snapshot(conn, snapshot), snapshot)
    return {tid: hashlib.sha256(decode.row_bytes(body, starts, first, end)).hexdigest()
            for tid, first, end in runs(decode.ticker_ids(body, starts))}


def _file_intact(store: Store, key: str, entry: manifest.Entry) -> bool:
    try:
        data = store.get(key)
    except ArchiveError:
        return False
    return len(data) == entry.size and hashlib.sha256(data).hexdigest() == entry.sha256


def check(conn: psycopg.Connection, store: Store, owner: Warehouse, depth: Depth,
          skip: Collection[datetime] = (), scope: Window = EVERYTHING) -> Coverage:
    """Every stored chain of ``scope`` (``kapman.archive.checkpoint``; default: all) against the
    archive, to ``depth`` (see the module's docstring), but the snapshots in ``skip``.  A bounded
    scope lists and reads only its snapshots' days of the archive.  Raises ArchiveError when the
    store cannot be listed, psycopg.Error when the table cannot be read."""
    by_snapshot = stored_chains(conn, skip, scope)
    if scope.everything:
        present = store.sizes(manifest.ROOT)
    else:
        present = {}
        for day in sorted({ny_date_of(t) for t in by_snapshot}):
            present.update(store.sizes(f"{manifest.ROOT}/date={day.isoformat()}"))
    others: dict[datetime, str] = {}
    listed = manifests(store, owner, sorted(present), others)
    result = Coverage(store.location, depth=depth, archived=len(listed))
    for snapshot, chains in sorted(by_snapshot.items()):
        result.snapshots += 1
        result.checked.append(snapshot)
        result.chains += len(chains)
        found = listed.get(snapshot)
        if found is None and snapshot in others:
            result.others[snapshot] = others[snapshot]
        hashes = stored_contents(conn, snapshot) if depth >= Depth.CONTENT and found is not None else None
        for ticker_id, stored in chains.items():
            why = _problem(store, found, ticker_id, stored, present, depth, hashes)
            if why is None:
                result.covered += 1
            else:
                result.problems.setdefault(snapshot, {})[ticker_id] = why
    return result


def _problem(store: Store, found: Manifest | None, ticker_id: UUID, stored: tuple[int, datetime],
             present: dict[str, int], depth: Depth, hashes: dict[UUID, str] | None) -> str | None:
    """Why one stored chain is not covered, or None."""
    rows, updated = stored
    if found is None:
        return "no manifest"
    name = file_name(ticker_id)
    entry = found.files.get(name)
    if entry is None:
        return "not listed"
    if entry.rows != rows:
        return f"rows differ: {entry.rows} archived, {rows} stored"
    if entry.updated is not None and entry.updated != updated:
        return "rows differ: written since they were archived"
    key = found.key(name)
    if key not in present:
        return "file missing"
    if present[key] != entry.size:
        return "file damaged: its size is not the manifest's"
    if depth < Depth.FILES:
        return None
    if hashes is not None:
        return _rows_problem(store, found, key, entry, hashes.get(ticker_id))
    if not _file_intact(store, key, entry):
        return "file damaged"
    return None


def _rows_problem(store: Store, found: Manifest, key: str, entry: manifest.Entry, stored: str | None) -> str | None:
    """Why one archived file's own rows are not the stored chain's, or None: the file verified as the
    restore verifies it, then the hash of the rows it holds (not the hash its manifest claims: a
    manifest edited to a changed file's SHA-256 and size still lists the old rows' hash) compared
    with the stored rows'."""
    from kapman.archive.restore import BadFile, prepare  # the restore's own checks; it imports the database layer

    try:
        _, payload = prepare(store, key, found, entry)
    except (BadFile, ArchiveError) as exc:
        return f"file damaged: {exc}"
    return None if table.content_hash(payload) == stored else "content differs"
