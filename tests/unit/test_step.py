"""The step result: outcome, exit code, summary and JSON all follow from the counts."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kapman.step import LISTED_AT_MOST, Outcome, StepResult


def test_a_clean_run_is_ok_and_exits_0() -> None:
    r = StepResult("ohlcv", unit="files", read=10, written=8, unchanged=2, done=3)
    assert r.outcome is Outcome.OK and r.exit_code == 0
    line = r.stop_clock().summary()
    assert line.startswith("ohlcv: ok · 10 read, 8 written, 2 unchanged · ")


def test_up_to_date_is_ok_not_nothing() -> None:
    r = StepResult("a2", unit="dates", unchanged=500, done=1, headline="2025-12-19 already computed")
    assert r.outcome is Outcome.OK and r.exit_code == 0
    assert "2025-12-19 already computed" in r.summary()


def test_some_failures_are_partial_and_exit_1() -> None:
    r = StepResult("options", unit="symbols", written=100, done=2)
    r.fail("MSFT", "HTTP 500 after 6 retries")
    assert r.outcome is Outcome.PARTIAL and r.exit_code == 1
    assert "  failed MSFT: HTTP 500 after 6 retries" in r.summary().splitlines()
    assert "1 symbols failed" in r.summary()


def test_every_unit_failing_is_failed_and_exits_2() -> None:
    r = StepResult("options", unit="symbols")
    r.fail("AAPL", "boom")
    assert r.outcome is Outcome.FAILED and r.exit_code == 2


def test_nothing_to_do_exits_2_with_its_reason() -> None:
    r = StepResult("a2", unit="dates")
    r.nothing("no bars on 2025-12-13 (a Saturday)")
    assert r.outcome is Outcome.NOTHING and r.exit_code == 2
    assert r.summary().startswith("a2: nothing-to-do · no bars on 2025-12-13 (a Saturday) · ")
    assert r.as_dict()["nothing_reason"] == "no bars on 2025-12-13 (a Saturday)"


def test_a_failure_outranks_nothing() -> None:
    r = StepResult("a3", unit="dates")
    r.nothing("no snapshot")
    r.fail("2025-12-12", "bad")
    assert r.outcome is Outcome.FAILED


def test_lists_are_capped_in_summary_and_json() -> None:
    r = StepResult("watchlists", unit="files")
    for n in range(10_000):
        r.note(f"duplicate symbol AAPL at line {n}")
        r.fail(f"f{n}", "bad")
    text = r.summary()
    data = r.as_dict()
    assert text.count("\n") == 2 * LISTED_AT_MOST + 2
    assert f"… and {10_000 - LISTED_AT_MOST} more failures" in text
    assert len(data["failures"]) == LISTED_AT_MOST and data["failed"] == 10_000
    assert len(data["notes"]) == LISTED_AT_MOST and data["notes_total"] == 10_000
    assert len(json.dumps(data)) < 5_000


@dataclass
class Window:
    window: str


def test_json_has_status_counts_and_details() -> None:
    r = StepResult("ohlcv", unit="files", read=3, done=1, details=Window("2025-12-15..2025-12-19"))
    data = r.stop_clock().as_dict()
    assert data["status"] == "ok" and data["exit_code"] == 0 and data["step"] == "ohlcv"
    assert data["counts"] == {"read": 3, "written": 0, "unchanged": 0, "rejected": 0, "removed": 0}
    assert data["window"] == "2025-12-15..2025-12-19"
    assert isinstance(data["seconds"], float)
