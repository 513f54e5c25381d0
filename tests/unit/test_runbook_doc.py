"""The runbook document, the demo and the entrypoints agree."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kapman import registry, runbook
from kapman.demo import option_steps
from tests.support.entry import Ran

RunMain = Callable[..., Ran]

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbooks" / "README.md"


def _entrypoints() -> list[str]:
    """Every module under scripts/ (found on disk, so a new entry point cannot be forgotten)."""
    found = []
    for path in sorted((ROOT / "scripts").rglob("*.py")):
        if path.name != "__init__.py":
            found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


ENTRYPOINTS = _entrypoints()


def all_steps() -> list[runbook.Step]:
    return (runbook.schema_and_reference_steps() + [runbook.restore_step()] + option_steps([runbook.A3_WEEK[0]], None)
            + runbook.analytics_steps() + runbook.dashboard_steps() + runbook.report_steps())


@pytest.mark.parametrize("step", all_steps(), ids=lambda s: s.title)
def test_every_step_the_demo_runs_is_in_the_runbook_verbatim(step: runbook.Step) -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    assert step.command in text, f"runbook lacks: {step.command}"
    for key, value in step.env.items():
        assert f"{key}={value} {step.command}" in text


def test_every_dashboard_file_exists() -> None:
    for name in runbook.DASHBOARDS:
        assert (ROOT / "docs" / "runbooks" / name).is_file()


def test_the_scan_finds_the_runbook_steps() -> None:
    assert {"scripts.db.a5_deterministic_rebuild", "scripts.ingest_tickers", "scripts.ingest_watchlists",
            "scripts.ingest_ohlcv", "scripts.ingest_options", "scripts.run_a2_local_ta",
            "scripts.run_a3_dealer_metrics"} <= set(ENTRYPOINTS)


@pytest.mark.parametrize("module", ENTRYPOINTS)
def test_every_entrypoint_has_help_with_examples_and_is_in_the_runbook(module: str, run_main: RunMain) -> None:
    proc = run_main(module, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout and "--db-url" in proc.stdout
    assert f"python -m {module}" in RUNBOOK.read_text(encoding="utf-8")
    assert f"python -m {module}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("module", ENTRYPOINTS)
def test_no_help_line_states_its_default_twice(module: str, run_main: RunMain) -> None:
    proc = run_main(module, "--help")
    options = proc.stdout.split("examples:")[0]
    entries = re.split(r"\n(?=  -)", options)
    assert len(entries) > 3
    for entry in entries:
        assert entry.lower().count("default") <= 1, entry


@pytest.mark.parametrize("module", ENTRYPOINTS)
def test_every_entrypoint_is_a_kapman_subcommand(module: str) -> None:
    assert module in {s.script for s in registry.STEPS}, f"declare {module} in kapman/registry.py STEPS"


@pytest.mark.parametrize("step", [s for s in registry.STEPS if s.script.startswith("scripts.")], ids=lambda s: s.name)
def test_every_registered_step_is_in_the_runbook_and_its_shim_runs_its_command(step: registry.Step) -> None:
    assert step.command in RUNBOOK.read_text(encoding="utf-8")
    shim = __import__(step.script, fromlist=["main"])
    assert shim.main is __import__(step.main_module, fromlist=["main"]).main


def test_psql_steps_get_the_database_url() -> None:
    step = runbook.dashboard_steps()[0]
    argv = step.argv("postgresql://u@h/db")
    assert argv[:3] == ["psql", "-X", "-q"] and "postgresql://u@h/db" in argv


#: The machine the runbook is written for has 2 cores: an example asking for more workers than that teaches
#: contention, not speed.
EXAMPLE_CORES = 2
_WORKERS = re.compile(r"--workers[ =](\d+)")


def test_examples_ask_for_no_more_workers_than_the_machine_has() -> None:
    """The runbook, the README, the demo's steps and each command's --help examples."""
    texts = {"docs/runbooks/README.md": (ROOT / "docs" / "runbooks" / "README.md").read_text(),
             "README.md": (ROOT / "README.md").read_text(),
             "kapman/runbook.py": "\n".join(s.command for s in all_steps())}
    texts.update({f"kapman/commands/{p.name}": p.read_text() for p in (ROOT / "kapman" / "commands").glob("*.py")})
    too_many = {name: counts for name, text in texts.items()
                if (counts := [int(n) for n in _WORKERS.findall(text) if int(n) > EXAMPLE_CORES])}
    assert too_many == {}
