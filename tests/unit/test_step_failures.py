"""A failure that is not one of the step's units (an options run's archive) is named, not counted
as one of them ("1 symbols failed" used to report a failed archive)."""

from __future__ import annotations

from datetime import UTC, datetime

from kapman.ingest.options.report import OptionsResult, SymbolOutcome
from kapman.step import Outcome, StepResult


class _FailedArchive:
    ok = False

    def line(self) -> str:
        return "archive: cannot write s3://bucket/x (AccessDenied)"

    def as_dict(self) -> dict:
        return {"ok": False}


def test_a_failed_archive_is_named_and_the_run_partial() -> None:
    result = OptionsResult(snapshot_time=datetime(2025, 12, 19, 21, tzinfo=UTC), concurrency=1)
    result.outcomes = {"AAPL": SymbolOutcome(status="ok"), "MSFT": SymbolOutcome(status="ok")}
    result.archive = _FailedArchive()  # type: ignore[assignment]
    step = result.step_result()
    first = step.summary().splitlines()[0]
    assert "archive failed" in first and "symbols failed" not in first
    assert step.outcome is Outcome.PARTIAL and step.exit_code == 1


def test_counted_and_named_failures_together() -> None:
    step = StepResult("options", unit="symbols", done=1)
    step.fail("AAPL", "403")
    step.fail("archive", "no space", counted=False)
    assert step.failed_text() == "1 symbols failed, archive failed"
