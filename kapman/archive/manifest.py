"""The archive's layout and its manifests.

    options_chains/date=2025-12-19/time=20251219T210500Z/manifest.json
    options_chains/date=2025-12-19/time=20251219T210500Z/<ticker_id>.parquet

One directory per snapshot, partitioned by the snapshot's New York date (the trading date the
runbook's --start-date/--end-date name).  Each snapshot's manifest lists its files with the
underlying, row count, size and SHA-256; it is written after its files, so a file it lists is
complete.  A file on disk that no manifest lists is ignored.
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
MANIFEST = "manifest.json"
FORMAT = 1
_PARTITION = re.compile(r"^options_chains/date=(\d{4}-\d{2}-\d{2})/time=([^/]+)/manifest\.json$")


def snapshot_dir(snapshot: datetime) -> str:
    stamp = snapshot.astimezone(UTC).strftime("%Y%m%dT%H%M%S" + (".%f" if snapshot.microsecond else "") + "Z")
    return f"{ROOT}/date={ny_date_of(snapshot).isoformat()}/time={stamp}"


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
    sha256: str


@dataclass
class Manifest:
    snapshot_time: datetime
    files: dict[str, Entry] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.files.values())

    def key(self, name: str) -> str:
        return f"{snapshot_dir(self.snapshot_time)}/{name}"

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "format": FORMAT, "table": ROOT, "snapshot_time": self.snapshot_time.isoformat(),
            "rows": self.rows,
            "files": {name: {"ticker_id": str(e.ticker_id), "rows": e.rows, "bytes": e.size, "sha256": e.sha256}
                      for name, e in sorted(self.files.items())},
        }
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Raises ValueError (with what is wrong) on anything but a manifest this code wrote."""
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT or body.get("table") != ROOT:
                raise ValueError(f"not a format-{FORMAT} {ROOT} manifest")
            snapshot = datetime.fromisoformat(body["snapshot_time"])
            files = {name: Entry(UUID(e["ticker_id"]), int(e["rows"]), int(e["bytes"]), str(e["sha256"]))
                     for name, e in body["files"].items()}
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"unreadable manifest ({type(exc).__name__}: {exc})") from None
        if snapshot.tzinfo is None:
            raise ValueError("manifest snapshot_time has no time zone")
        return cls(snapshot, files)
