"""The archive's layout and its manifests.

    options_chains/date=2025-12-19/snapshot=20251219T210500Z/_manifest.json
    options_chains/date=2025-12-19/snapshot=20251219T210500Z/<ticker_id>.parquet

One directory per snapshot, partitioned by the snapshot's New York date (the trading date the
runbook's --start-date/--end-date name).  Each snapshot's manifest names the warehouse that wrote
it and its source (``kapman.archive.warehouse``) and lists its files with the underlying (id and
symbol), row count, size, the file's SHA-256, and the SHA-256 of its rows as the table sends them
(binary COPY in key order: what coverage and restore compare, whatever the Parquet encoding); it is
written after its files, so a file it lists is complete.  A file that no manifest lists is ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from kapman.clock import ny_date_of

ROOT = "options_chains"
#: Named with a leading underscore, which Parquet data-set readers skip (``manifest.json`` before format 2).
MANIFEST = "_manifest.json"
#: 2: the manifest names its warehouse and source, and each file's symbol and content hash; the
#: files carry a ``symbol`` column and ``ticker_id`` as text.  Format 1 is still read.
FORMAT = 2
READABLE = (1, 2)
#: ``snapshot=`` since format 2 (``time=`` before: a Hive-partitioned reader took it for the ``time``
#: column, which every file holds too); both layouts are read.
_PARTITION = re.compile(r"^options_chains/date=(\d{4}-\d{2}-\d{2})/(?:snapshot|time)=([^/]+)/_?manifest\.json$")


def snapshot_dir(snapshot: datetime) -> str:
    stamp = snapshot.astimezone(UTC).strftime("%Y%m%dT%H%M%S" + (".%f" if snapshot.microsecond else "") + "Z")
    return f"{ROOT}/date={ny_date_of(snapshot).isoformat()}/snapshot={stamp}"


def manifest_key(snapshot: datetime) -> str:
    return f"{snapshot_dir(snapshot)}/{MANIFEST}"


def file_name(ticker_id: UUID) -> str:
    return f"{ticker_id}.parquet"


def partition_date(key: str) -> date | None:
    """The snapshot date of a manifest key, or None for any other key."""
    m = _PARTITION.match(key)
    return date.fromisoformat(m.group(1)) if m else None


@dataclass(frozen=True)
class Entry:
    ticker_id: UUID
    rows: int
    size: int
    sha256: str                   # of the file's bytes
    symbol: str | None = None     # None: a format-1 manifest
    content: str | None = None    # SHA-256 of the rows as the table's binary COPY sends them
    updated: datetime | None = None  # the rows' latest updated_at: a later write shows without reading rows


@dataclass
class Manifest:
    snapshot_time: datetime
    files: dict[str, Entry] = field(default_factory=dict)
    warehouse: str | None = None  # None: a format-1 manifest, written before archives had an owner
    source: str | None = None     # "live" or "sandbox"
    directory: str | None = field(default=None, compare=False)  # where it was read (format 1: time=...)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.files.values())

    def key(self, name: str) -> str:
        return f"{self.directory or snapshot_dir(self.snapshot_time)}/{name}"

    @classmethod
    def load(cls, store: Any, key: str) -> Manifest:
        """The manifest at ``key`` of ``store`` (a ``kapman.archive.store.Store``), its files in its
        own directory, which must be its snapshot's (a manifest copied into another snapshot's
        directory would vouch for that snapshot's files).  Raises ValueError as ``from_bytes``,
        ArchiveError as the store."""
        found = cls.from_bytes(store.get(key))
        found.directory = key.rsplit("/", 1)[0]
        own = snapshot_dir(found.snapshot_time)
        if found.directory not in (own, own.replace("/snapshot=", "/time=")):  # format 1: time=
            raise ValueError(f"manifest of snapshot {found.snapshot_time.isoformat()} in another snapshot's "
                             f"directory (expected {own})")
        return found

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "format": FORMAT, "table": ROOT, "warehouse": self.warehouse, "source": self.source,
            "snapshot_time": self.snapshot_time.isoformat(), "rows": self.rows,
            "files": {name: {"ticker_id": str(e.ticker_id), "symbol": e.symbol, "rows": e.rows, "bytes": e.size,
                             "sha256": e.sha256, "content_sha256": e.content,
                             "updated_at_max": e.updated.isoformat() if e.updated else None}
                      for name, e in sorted(self.files.items())},
        }
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Raises ValueError (with what is wrong) on anything but a manifest this code wrote (format 1
        or 2)."""
        try:
            body = json.loads(data, object_pairs_hook=_unique_keys)
            if body.get("format") not in READABLE or body.get("table") != ROOT:
                raise ValueError(f"not a format-{FORMAT} {ROOT} manifest")
            snapshot = datetime.fromisoformat(body["snapshot_time"])
            files = {name: _entry(name, e) for name, e in body["files"].items()}
            warehouse, source = body.get("warehouse"), body.get("source")
        except (UnicodeDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:  # JSONDecodeError too
            kind = "" if type(exc) is ValueError else f"{type(exc).__name__}: "
            raise ValueError(f"unreadable manifest ({kind}{exc})") from None
        if snapshot.tzinfo is None:
            raise ValueError("manifest snapshot_time has no time zone")
        return cls(snapshot, files, warehouse, source)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: a file listed twice is an edited manifest, not one of ours."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"{key!r} listed twice")
        seen.add(key)
    return dict(pairs)


def _entry(name: str, e: dict[str, Any]) -> Entry:
    """One file's entry; its name must be its underlying's file (no other name, no path: a name
    such as ``../x.parquet`` would read outside the snapshot's directory)."""
    entry = Entry(UUID(e["ticker_id"]), int(e["rows"]), int(e["bytes"]), str(e["sha256"]),
                  e.get("symbol"), e.get("content_sha256"),
                  datetime.fromisoformat(e["updated_at_max"]) if e.get("updated_at_max") else None)
    if name != file_name(entry.ticker_id):
        raise ValueError(f"file {name!r} is not named for its underlying ({file_name(entry.ticker_id)})")
    if entry.rows < 0 or entry.size < 0:
        raise ValueError(f"file {name}: negative row count or size")
    return entry
