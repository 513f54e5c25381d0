"""snapshot.decide: the sandbox replays on KapMan's clock; a live chain is always stored as of now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kapman.errors import UsageError
from kapman.ingest.options.snapshot import decide
from kapman.providers.http import ServerClock

LIVE_NOW = datetime(2026, 3, 2, 15, 30, 7, tzinfo=UTC)
LIVE = ServerClock(sandbox=None, date=LIVE_NOW)
SANDBOX = ServerClock(sandbox=datetime(2025, 12, 19, 21, tzinfo=UTC), date=LIVE_NOW)
API = "https://api.massive.com"


def test_server_clock_reads_the_sandbox_header_and_the_date_header() -> None:
    clock = ServerClock.of({"X-Sandbox-Clock": "2025-12-19T21:00:00Z", "Date": "Mon, 02 Mar 2026 15:30:07 GMT"})
    assert clock == SANDBOX
    assert ServerClock.of({"Date": "not a date"}) == ServerClock(None, None)
    assert ServerClock.of({}) == ServerClock(None, None)


def test_the_sandbox_keeps_kapmans_clock_and_its_replay_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19")
    assert decide(None, SANDBOX, "http://127.0.0.1:1") == datetime(2025, 12, 19, 21, tzinfo=UTC)
    assert decide("2025-12-19T15:00:00Z", SANDBOX, "http://127.0.0.1:1") == datetime(2025, 12, 19, 15, tzinfo=UTC)
    with pytest.raises(UsageError, match="not today in New York"):
        decide("2025-12-18T21:00:00Z", SANDBOX, "http://127.0.0.1:1")


def test_live_is_the_servers_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    assert decide(None, LIVE, API) == LIVE_NOW
    assert decide("2026-03-02T15:30:40Z", LIVE, API) == datetime(2026, 3, 2, 15, 30, 40, tzinfo=UTC)  # skew
    before = datetime.now(UTC).replace(microsecond=0)
    assert before <= decide(None, ServerClock(None, None), API) <= datetime.now(UTC)  # no Date: this machine


@pytest.mark.parametrize("frozen", ["2025-12-15", "2026-03-02T15:20:00Z", "2026-03-05"])
def test_kapman_now_cannot_move_a_live_chain(frozen: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", frozen)
    with pytest.raises(UsageError) as info:
        decide(None, LIVE, API)
    assert info.value.message.startswith(f"KAPMAN_NOW={frozen} puts KapMan's clock at ")
    assert f"but {API} is the live API and now is 2026-03-02T15:30:07Z by its Date header" in info.value.message
    assert "unset KAPMAN_NOW" in (info.value.hint or "")


def test_kapman_now_within_the_skew_is_harmless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "2026-03-02T15:30:00Z")
    assert decide(None, LIVE, API) == LIVE_NOW


@pytest.mark.parametrize("requested", ["2026-03-02T14:00:00Z", "2026-03-01T21:00:00Z", "2026-03-02T16:00:00Z"])
def test_snapshot_time_cannot_move_a_live_chain(requested: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    with pytest.raises(UsageError, match=f"--snapshot-time {requested} is not now: {API} is the live API") as info:
        decide(requested, LIVE, API)
    assert "cannot be stored under another time" in info.value.message
    with pytest.raises(UsageError, match="not an ISO timestamp"):
        decide("yesterday", LIVE, API)


@pytest.mark.parametrize("requested", [None, "2025-12-19T21:00:00Z"])
def test_a_sandbox_header_from_another_host_does_not_move_a_live_chain(requested: str | None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Any server naming itself the sandbox was believed: with KAPMAN_NOW or --snapshot-time the
    chain it sent was stored under a past date."""
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19")
    with pytest.raises(UsageError, match=f"but {API} is the live API and now is 2026-03-02T15:30:07Z"):
        decide(requested, SANDBOX, API)
    monkeypatch.delenv("KAPMAN_NOW")
    with pytest.raises(UsageError, match=f"--snapshot-time 2025-12-19T21:00:00Z is not now: {API} is the live API"):
        decide("2025-12-19T21:00:00Z", SANDBOX, API)
    assert decide(None, SANDBOX, API) == LIVE_NOW


@pytest.mark.parametrize("requested", [None, "2025-12-15T20:00:00Z"])
def test_a_sandbox_ahead_of_kapmans_clock_is_refused(requested: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its chain is of its own clock, the 19th: stored as the 15th's snapshot it was a later chain
    under an earlier time."""
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-15")
    with pytest.raises(UsageError, match="the sandbox serves its chains as of 2025-12-19T21:00:00Z"):
        decide(requested, SANDBOX, "http://127.0.0.1:1")


def test_a_sandbox_behind_kapmans_clock_or_within_the_skew_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T15:00:00Z")    # the vendor's Friday chain on Saturday
    assert decide(None, SANDBOX, "http://127.0.0.1:1") == datetime(2025, 12, 20, 15, tzinfo=UTC)
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T20:59:30Z")
    assert decide(None, SANDBOX, "http://127.0.0.1:1") == datetime(2025, 12, 19, 20, 59, 30, tzinfo=UTC)
