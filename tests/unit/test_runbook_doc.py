"""The runbook document, the demo and the entrypoints agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kapman import runbook
from kapman.demo import option_steps

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINTS = ["scripts.db.a5_deterministic_rebuild", "scripts.ingest_tickers", "scripts.ingest_watchlists",
               "scripts.ingest_ohlcv", "scripts.ingest_options", "scripts.run_a2_local_ta",
               "scripts.run_a3_dealer_metrics"]


def all_steps() -> list[runbook.Step]:
    return (runbook.schema_and_reference_steps() + option_steps([runbook.A3_WEEK[0]], None)
            + runbook.analytics_steps() + runbook.dashboard_steps())


@pytest.mark.parametrize("step", all_steps(), ids=lambda s: s.title)
def test_every_step_the_demo_runs_is_in_the_runbook_verbatim(step: runbook.Step) -> None:
    text = runbook.documented_commands()
    assert step.command in text, f"runbook lacks: {step.command}"
    for key, value in step.env.items():
        assert f"{key}={value} {step.command}" in text


def test_every_dashboard_file_exists() -> None:
    for name in runbook.DASHBOARDS:
        assert (ROOT / "docs" / "runbooks" / name).is_file()


@pytest.mark.parametrize("module", ENTRYPOINTS)
def test_every_entrypoint_has_help_with_examples_and_is_in_the_runbook(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout and "--db-url" in proc.stdout
    assert f"python -m {module}" in runbook.documented_commands()
    assert f"python -m {module}" in (ROOT / "README.md").read_text()


def test_psql_steps_get_the_database_url() -> None:
    step = runbook.dashboard_steps()[0]
    argv = step.argv("postgresql://u@h/db")
    assert argv[:3] == ["psql", "-X", "-q"] and "postgresql://u@h/db" in argv
