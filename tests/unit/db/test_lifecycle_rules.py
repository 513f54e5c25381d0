"""The lifecycle's clock rules and the lines that report them, without a server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from kapman.clock import close_of
from kapman.db import lifecycle
from kapman.db.retention import RetentionReport

FROZEN = lifecycle.Clock("frozen", close_of(date(2025, 12, 19)))


def test_a_clock_near_real_time_is_real(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", (datetime.now(UTC) - timedelta(hours=20)).isoformat())
    assert lifecycle.process_clock() == lifecycle.Clock("real")
    monkeypatch.setenv("KAPMAN_NOW", (datetime.now(UTC) - timedelta(days=2)).isoformat())
    assert lifecycle.process_clock().mode == "frozen"
    monkeypatch.delenv("KAPMAN_NOW")
    assert lifecycle.process_clock() == lifecycle.Clock("real")


def test_effective_now_never_falls_back_to_the_real_date_on_a_frozen_database(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    now = lifecycle.effective_now(FROZEN)
    assert (now.instant, now.source) == (FROZEN.frozen_at, "recorded")
    assert now.describe() == "2025-12-19, the database's frozen clock (KAPMAN_NOW is unset here)"
    assert lifecycle.effective_now(lifecycle.Clock("real")).source == "real time"
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-15")
    now = lifecycle.effective_now(FROZEN)
    assert (now.instant, now.describe()) == (close_of(date(2025, 12, 15)), "2025-12-15, KAPMAN_NOW")


def test_the_rebuild_line_says_who_keeps_the_windows() -> None:
    assert lifecycle.describe("policy", lifecycle.Clock("real")).startswith(
        "lifecycle: TimescaleDB policies scheduled (retention 730 days, compression after 120 days)")
    assert lifecycle.describe("policy", FROZEN) == (
        "lifecycle: TimescaleDB policies (retention 730 days, compression after 120 days) paused: KapMan's "
        "clock is frozen at 2025-12-19 21:00 UTC; KapMan enforces the same windows on its clock after each "
        "successful run")
    assert lifecycle.describe("application", FROZEN).endswith("compression unavailable (Apache edition)")


def test_the_paused_policy_retention_line() -> None:
    report = RetentionReport(mode="paused-policy", cutoff=date(2023, 12, 20), compress_cutoff=date(2025, 8, 21),
                             now=lifecycle.Now(FROZEN.frozen_at, "KAPMAN_NOW"), clock=FROZEN,  # type: ignore[arg-type]
                             dropped={"ohlcv": ["c1", "c2"]}, compressed={"ohlcv": ["c3"]},
                             ledger_removed=[date(2023, 11, 1)])
    assert report.describe() == (
        "retention: TimescaleDB policies paused (KapMan's clock is frozen at 2025-12-19 21:00 UTC); KapMan "
        "enforced 730 days on its clock (2025-12-19, KAPMAN_NOW): cutoff 2023-12-20, 2 chunk(s) dropped, "
        "1 ledger day(s) removed; compression cutoff 2025-08-21, 1 chunk(s) compressed")
