"""Which stored snapshots an options run's catch-up examines: not all of history, every run.

KapMan writes option chains only through options runs and restores, both in the run ledger
(``ingest_runs``).  An options run that archives exports its own snapshot as it goes; what it
could leave unarchived is its own snapshot (archive write failed, run interrupted or killed, or
``--no-archive``).  So after a catch-up that succeeded, every snapshot up to the newest it
examined is archived, and only these can need archiving later:

- snapshots from that newest one on (``Window.since``): runs since then, and a replay of it;
- the snapshots of options runs that did not archive what they stored (``Window.also``) and
  were still running when that catch-up's run started (earlier ones ended before it looked);
- everything, when a restore ran since then (it may have loaded another warehouse's archive).

The catch-up's run records that newest snapshot in its ledger row (the archive report's
``checked_through``, beside the archive's location); with no such row for this archive (a new or
repaved warehouse, ``export_snapshots`` called alone, or an archive moved to another location), or
when the archive no longer holds that snapshot's manifest (an archive emptied or lost), the window
is everything.  Rows written around KapMan (by hand, in SQL) into an
older snapshot are not seen by the catch-up; ``status`` and the repave prompt still check every
stored chain.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg

from kapman import registry
from kapman.archive.manifest import manifest_key, snapshot_dir

if TYPE_CHECKING:
    from kapman.archive.store import Store

#: The archive report's key, in the options run's ledger summary, for the newest snapshot up to
#: which its catch-up found (or made) everything archived.
KEY = "checked_through"


@dataclass(frozen=True)
class Window:
    """Stored snapshots to examine: from ``since`` on (None: all), and those in ``also``."""

    since: datetime | None = None
    also: frozenset[datetime] = field(default_factory=frozenset)

    @property
    def everything(self) -> bool:
        return self.since is None

    def holds(self, snapshot: datetime) -> bool:
        return self.since is None or snapshot >= self.since or snapshot in self.also

    @classmethod
    def only(cls, snapshots: Collection[datetime]) -> Window:
        """Exactly ``snapshots``: a start no stored snapshot reaches, and them beside it."""
        return cls(datetime.max.replace(tzinfo=UTC), frozenset(snapshots))


EVERYTHING = Window()


def window(conn: psycopg.Connection, store: Store | None = None) -> Window:
    """The snapshots the next catch-up of ``store`` examines (see the module's docstring; without a
    store, the checkpoint of any location, unchecked)."""
    options, restores = list(registry.get("options").jobs), list(registry.get("restore-options").jobs)
    last = conn.execute(
        "SELECT (summary->'archive'->>%s)::timestamptz, started_at FROM public.ingest_runs "
        "WHERE job = ANY(%s) AND summary->'archive'->>%s IS NOT NULL "
        "AND (%s::text IS NULL OR summary->'archive'->>'location' = %s) ORDER BY started_at DESC LIMIT 1",
        (KEY, options, KEY, store and store.location, store and store.location)).fetchone()
    if last is None:
        return EVERYTHING
    through, started = last
    if store is not None and manifest_key(through) not in store.keys(snapshot_dir(through)):
        return EVERYTHING  # the archive lost what the checkpoint vouches for: examine it all again
    restored = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM public.ingest_runs WHERE job = ANY(%s) "
        "AND (finished_at IS NULL OR finished_at >= %s))", (restores, started)).fetchone()
    if restored and restored[0]:
        return EVERYTHING
    unarchived = conn.execute(
        "SELECT DISTINCT snapshot_time FROM public.ingest_runs WHERE job = ANY(%s) AND snapshot_time IS NOT NULL "
        "AND (finished_at IS NULL OR finished_at >= %s) "
        "AND NOT coalesce((summary->'archive'->>'ok')::boolean, false)", (options, started)).fetchall()
    return Window(through, frozenset(r[0] for r in unarchived))


def checked_through(scope: Window, examined: Collection[datetime], done: Collection[datetime]) -> datetime | None:
    """What a catch-up that succeeded records: the newest snapshot it examined or exported (else
    the window's own start)."""
    seen = [*examined, *done, *([scope.since] if scope.since is not None else [])]
    return max(seen) if seen else None
