"""An options run's one snapshot time, and why it can be trusted.

The snapshot endpoint returns the chain as it is now; there is no historical snapshot.  So a
snapshot's time is the time the chain was taken, and who says what "now" is depends on the server:

- the live API: the real wall clock, as the server's ``Date`` header witnesses it (this machine's
  clock when the header is missing).  Neither ``KAPMAN_NOW`` nor ``--snapshot-time`` can put a
  live chain under another time; a run that asks for one is refused with the reason.
- the offline sandbox (it names itself in every response, ``X-Sandbox-Clock``, and serves on this
  machine's loopback): KapMan's clock, so that the demo and the tests replay market days;
  ``--snapshot-time`` replays a run of the same New York day, never a future one.  The sandbox
  serves the chain as of its own clock, so KapMan's may not name an earlier day than it (the
  sandbox's clock moves with KapMan's in the demo).  The header from any other host is not
  believed: whoever answers there is the live API.
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


def sandbox_snapshot_time(requested: str | None, served: datetime) -> datetime:
    """A sandbox run's snapshot time (``snapshot_time``), unless its New York day is before the day of
    the sandbox's clock (``served``): the sandbox serves the chain as of its own clock, and storing a
    later day's chain under an earlier one would replace that day's snapshot (and its archived file)
    with another day's.  A later day is allowed (a run by hand on a Saturday takes Friday's chain)."""
    when = snapshot_time(requested)
    if clock.ny_date_of(when) < clock.ny_date_of(served):
        raise UsageError(
            f"KapMan's clock ({when:{_FMT}}) is before the sandbox's ({served.astimezone(UTC):{_FMT}}): the "
            "sandbox serves the chain as of its own clock, which cannot be stored under an earlier day",
            hint=f"move the sandbox's clock to KapMan's day (curl -XPOST $POLYGON_BASE_URL/_sandbox/clock -d "
                 f"'{{\"now\": \"{clock.ny_date_of(when)}\"}}'), or set KAPMAN_NOW to the sandbox's",
        )
    return when


def decide(requested: str | None, server: ServerClock, source: str) -> datetime:
    """The run's snapshot time by the rules of the server that serves the chains (``source``, its
    base URL): the sandbox's only from this machine's loopback."""
    if server.sandbox is not None and on_loopback(source):
        return sandbox_snapshot_time(requested, server.sandbox)
    return live_snapshot_time(requested, server, source)
