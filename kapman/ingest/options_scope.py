"""An options run's one snapshot time (its symbols are the watchlist scope, kapman.ingest.watchlist_scope)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kapman import clock
from kapman.errors import UsageError

#: A --snapshot-time a little ahead of our clock is tolerated (clocks of two hosts disagree).
CLOCK_SKEW = timedelta(seconds=60)


def snapshot_time(requested: str | None = None) -> datetime:
    """The run's one snapshot time: now by KapMan's clock (UTC, whole seconds), or a replay.

    The endpoint returns the chain as it is now, so a replay may only reuse a time of the same
    New York day that is not in the future; storing today's chain under a past date would be a lie.
    """
    now = clock.now().astimezone(UTC).replace(microsecond=0)
    if requested is None:
        return now
    try:
        when = clock.parse_instant(requested).replace(microsecond=0)
    except ValueError:
        raise UsageError(
            f"--snapshot-time {requested!r} is not an ISO timestamp",
            hint="use e.g. --snapshot-time 2025-12-19T21:00:00Z",
        ) from None
    if when > now + CLOCK_SKEW:
        raise UsageError(
            f"--snapshot-time {when:%Y-%m-%dT%H:%M:%SZ} is in the future (now {now:%Y-%m-%dT%H:%M:%SZ})",
            hint="omit --snapshot-time to use now",
        )
    if clock.ny_date_of(when) != clock.ny_date_of(now):
        raise UsageError(
            f"--snapshot-time {when:%Y-%m-%dT%H:%M:%SZ} is not today in New York "
            f"({clock.ny_date_of(now)}): option snapshots describe the chain now and "
            "cannot be stored under a past date",
            hint="--snapshot-time only replays a run of today; omit it to use now",
        )
    return when
