"""A runbook step whose output goes to a file (the demo's dashboards) leaves the terminal to the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from kapman import runbook


def test_a_step_with_an_output_file_appends_to_it(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "logs" / "dashboards.txt"
    step = runbook.Step("9", "a talkative step", "python -c \"print('row 1'); print('row 2')\"", output=out)
    assert runbook.run_step(step, {}, "postgresql://unused").returncode == 0
    assert runbook.run_step(step, {}, "postgresql://unused").returncode == 0
    printed = capfd.readouterr().out
    assert "\nrow 1\n" not in printed and f"(output appended to {out})" in printed
    text = out.read_text()
    assert text.count("== Step 9: a talkative step ==") == 2 and text.count("row 2\n") == 2


def test_the_dashboards_take_the_file() -> None:
    steps = runbook.dashboard_steps(Path("/tmp/d.txt"))
    assert {s.output for s in steps} == {Path("/tmp/d.txt")} and len(steps) == len(runbook.DASHBOARDS)
    assert {s.output for s in runbook.dashboard_steps()} == {None}
