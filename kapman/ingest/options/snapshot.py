"""An options run's one snapshot time, and why it can be trusted.

The snapshot endpoint returns the chain as it is now; there is no historical snapshot.  So a
snapshot's time is the time the chain was taken, and who says what "now" is depends on the server:

- the live API: the real wall clock, as the server's ``Date`` header witnesses it (this machine's
  clock when the header is missing).  Neither ``KAPMAN_NOW`` nor ``--snapshot-time`` can put a
  live chain under another time; a run that asks for one is refused with the reason.
- the offline sandbox (it names itself in every response, ``X-Sandbox-Clock``, and serves on this
  machine's loopback): KapMan's clock, so that the demo and the tests replay market days;
  ``--snapshot-time`` replays a run of the same New York day, never a future one.  The sandbox
  serves its chains as of its own clock: one ahead of KapMan's would store a later chain as an
  earlier snapshot, and is refused (one behind is the vendor's stale chain, a Friday's on Saturday,
  which a real run meets too).  The header from any other host is not believed: whoever answers
  there is the live API.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from kapman import clock
from kapman.config import on_loopback
from kapman.errors import UsageError
from kapman.providers.polygon import ServerClock

#: How far two clocks may disagree (hosts' clocks drift; a Date header has whole seconds).
CLOCK_SKEW = timedelta(seconds=60)
_FMT = "%Y-%m-%dT%H:%M:%SZ"


def _parse(requested: str) -> datetime:
    try:
        return clock.parse_instant(requested).replace(microsecond=0)
    except ValueError:
        raise UsageError(
            f"--snapshot-time {requested!r} is not an ISO timestamp",
            hint="use e.g. --snapshot-time 2025-12-19T21:00:00Z",
        ) from None


def snapshot_time(requested: str | None = None) -> datetime:
    """A sandbox run's snapshot time: now by KapMan's clock (UTC, whole seconds), or a replay.

    A replay may only reuse a time of the same New York day that is not in the future; storing
    today's chain under a past date would be a lie.
    """
    now = clock.now().astimezone(UTC).replace(microsecond=0)
    if requested is None:
        return now
    when = _parse(requested)
    if when > now + CLOCK_SKEW:
        raise UsageError(
            f"--snapshot-time {when:{_FMT}} is in the future (now {now:{_FMT}})",
            hint="omit --snapshot-time to use now",
        )
    if clock.ny_date_of(when) != clock.ny_date_of(now):
        raise UsageError(
            f"--snapshot-time {when:{_FMT}} is not today in New York "
            f"({clock.ny_date_of(now)}): option snapshots describe the chain now and "
            "cannot be stored under a past date",
            hint="--snapshot-time only replays a run of today; omit it to use now",
        )
    return when


def live_snapshot_time(requested: str | None, server: ServerClock, source: str) -> datetime:
    """A live run's snapshot time: the server's clock (its Date header), never another time.

    ``source``: the API's base URL, for the messages.
    """
    witness = server.date or datetime.now(UTC)
    witness = witness.astimezone(UTC).replace(microsecond=0)
    said = "its Date header" if server.date else "this machine's clock (the server sent no Date header)"
    frozen = os.environ.get(clock.ENV_VAR, "").strip()
    if frozen:
        ours = clock.now().astimezone(UTC).replace(microsecond=0)
        if abs(ours - witness) > CLOCK_SKEW:
            raise UsageError(
                f"{clock.ENV_VAR}={frozen} puts KapMan's clock at {ours:{_FMT}}, but {source} is the live "
                f"API and now is {witness:{_FMT}} by {said}: a live option chain is the chain as of now "
                "and cannot be stored under another time",
                hint=f"unset {clock.ENV_VAR} (it replays market days on the offline sandbox only)",
            )
    if requested is None:
        return witness
    when = _parse(requested)
    if abs(when - witness) > CLOCK_SKEW:
        raise UsageError(
            f"--snapshot-time {when:{_FMT}} is not now: {source} is the live API and now is "
            f"{witness:{_FMT}} by {said}; a live option chain is the chain as of now and cannot be "
            "stored under another time",
            hint="omit --snapshot-time against the live API (it replays runs on the offline sandbox)",
        )
    return when


def _sandbox_not_ahead(served_as: datetime) -> None:
    """Refuse a sandbox whose clock is ahead of KapMan's: its chains are of a time still to come."""
    now = clock.now().astimezone(UTC).replace(microsecond=0)
    served_as = served_as.astimezone(UTC).replace(microsecond=0)
    if served_as > now + CLOCK_SKEW:
        raise UsageError(
            f"the sandbox serves its chains as of {served_as:{_FMT}} (its clock), after KapMan's clock "
            f"({now:{_FMT}}): a chain of that time cannot be stored as an earlier snapshot",
            hint=f"move both clocks together: curl -XPOST $POLYGON_BASE_URL/_sandbox/clock -d "
                 f"'{{\"now\": \"{now:{_FMT}}\"}}', or set {clock.ENV_VAR} to the sandbox's clock",
        )


def decide(requested: str | None, server: ServerClock, source: str) -> datetime:
    """The run's snapshot time by the rules of the server that serves the chains (``source``, its
    base URL): the sandbox's only from this machine's loopback."""
    if server.sandbox is not None and on_loopback(source):
        _sandbox_not_ahead(server.sandbox)
        return snapshot_time(requested)
    return live_snapshot_time(requested, server, source)
