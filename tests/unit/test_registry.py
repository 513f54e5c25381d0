"""The step registry: one declaration per step, read lazily, and ``execute``'s plumbing."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from kapman import registry
from kapman.config import Settings
from kapman.errors import ConfigError, ConnectionLost, UsageError
from kapman.execute import Context, Definition, execute
from kapman.registry import Step
from kapman.step import StepResult


@dataclass(frozen=True)
class ProbeParams:
    workers: int = 1
    fail_with: str | None = None    # "lost": the server drops the connection after two units

    def validate(self) -> None:
        if not 1 <= self.workers <= 8:
            raise UsageError(f"--workers must be between 1 and 8, not {self.workers}")


@dataclass
class ProbeDetails:
    pages: list[str]


def _body(ctx: Context, params: ProbeParams) -> None:
    ctx.result.done = 2
    ctx.result.details.pages.append("one")
    if params.fail_with == "lost":
        raise psycopg.OperationalError("server closed the connection unexpectedly")
    if params.fail_with == "usage":
        raise UsageError("a precondition")


STEP = Definition(ProbeParams, _body, details=lambda: ProbeDetails([]), ledger=False)
PROBE = Step("probe", "a step for the tests", "tests.unit.test_registry", "probes", __name__)
URL = Settings(database_url="postgresql://nobody@127.0.0.1:9/none")


def test_every_step_is_named_once_in_runbook_order() -> None:
    names = [s.name for s in registry.STEPS]
    assert len(names) == len(set(names))
    assert names[:9] == ["rebuild", "tickers", "splits", "watchlists", "ohlcv", "restore-options", "options",
                         "a2", "a3"]
    assert registry.get("restore_options") is registry.get("restore-options")   # older ledger rows
    assert registry.get("restore-options").jobs == ("restore-options", "restore_options")
    with pytest.raises(LookupError, match="no step named 'a4'"):
        registry.get("a4")


def test_a_steps_commands_come_from_its_declaration() -> None:
    a2 = registry.get("a2")
    assert a2.command == "python -m scripts.run_a2_local_ta"
    assert registry.mend("tickers") == "python -m scripts.ingest_tickers --force"
    assert registry.mend("ohlcv") == "python -m scripts.ingest_ohlcv incremental"


def test_status_mends_every_step_by_its_ledger_job() -> None:
    from kapman.ops import commands

    assert commands.BY_JOB["restore_options"] == commands.BY_JOB["restore-options"] == \
        "python -m scripts.restore_options_archive"
    assert {"splits", "rebuild", "nightly", "a2", "a3"} <= set(commands.BY_JOB)
    assert "status" not in commands.BY_JOB        # a tool, not a step


@pytest.mark.parametrize("name", [s.name for s in registry.steps()])
def test_every_step_declares_its_params_and_body(name: str) -> None:
    definition = registry.get(name).definition()
    assert callable(definition.params.validate) and callable(definition.body)


def test_the_nightly_plans_the_steps_it_runs() -> None:
    planned = [s.name for s in registry.steps() if s.definition().planned is not None]
    assert planned == ["tickers", "splits", "watchlists", "ohlcv", "options", "a2", "a3"]


def test_validation_comes_first_and_is_the_params_own() -> None:
    with pytest.raises(UsageError, match="--workers must be between 1 and 8, not 9"):
        execute(PROBE, Settings(), ProbeParams(workers=9))          # before any URL is asked for
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        execute(PROBE, Settings(), ProbeParams())
    with pytest.raises(TypeError, match="probe takes ProbeParams, not int"):
        execute(PROBE, URL, 3)


def test_typed_details_render_for_json() -> None:
    result = execute(PROBE, URL, ProbeParams())
    assert result.details == ProbeDetails(["one"]) and result.step == "probe" and result.unit == "probes"
    assert json.loads(json.dumps(result.as_dict()))["pages"] == ["one"]


def test_a_lost_connection_is_one_error_naming_the_units_done() -> None:
    with pytest.raises(ConnectionLost) as info:
        execute(PROBE, URL, ProbeParams(fail_with="lost"))
    assert info.value.message == "the database connection was lost after 2 probes; rerun to resume"
    with pytest.raises(UsageError):      # other errors pass unchanged
        execute(PROBE, URL, ProbeParams(fail_with="usage"))


def test_units_done_prefers_the_details_running_count() -> None:
    @dataclass
    class Counting:
        loaded: int = 3

        def units_done(self) -> int:
            return self.loaded

    assert StepResult("x", done=7, details=Counting()).units_done() == 3
    assert StepResult("x", done=7).units_done() == 7


@pytest.mark.parametrize(("module", "heavy"), [
    ("kapman.console", ("pandas", "numpy", "pyarrow")),
    ("kapman.registry", ("pandas", "numpy", "pyarrow")),
    ("kapman.ingest.options.workers", ("pandas", "pyarrow")),   # the workers encode with numpy
])
def test_reading_the_registry_imports_no_pandas_or_numpy(module: str, heavy: tuple[str, ...]) -> None:
    code = (f"import sys, {module}, kapman.registry as r; [s.command for s in r.STEPS]; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_an_installed_kapman_names_its_commands_as_kapman_subcommands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a checkout has the runbook's scripts package; hints elsewhere must name commands that exist."""
    assert registry.CHECKOUT is not None and registry.mend("tickers") == "python -m scripts.ingest_tickers --force"
    monkeypatch.setattr(registry, "CHECKOUT", None)
    assert all(s.command == f"kapman {s.name}" for s in registry.STEPS)
    assert registry.mend("tickers") == "kapman tickers --force" and registry.mend("migrate") == "kapman migrate"


def _strings_outside_docstrings(tree: ast.AST) -> list[ast.Constant]:
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_command_is_spelled_outside_the_registry() -> None:
    """A message naming ``python -m scripts...`` by hand is wrong where KapMan is installed (its
    commands are ``kapman <name>`` there); every message asks the registry."""
    package = Path(registry.__file__).parent
    spelled = [f"{path.relative_to(package.parent)}:{node.lineno}"
               for path in sorted(package.rglob("*.py")) if path.name != "registry.py"
               for node in _strings_outside_docstrings(ast.parse(path.read_text(), str(path)))
               if "python -m scripts." in node.value]
    assert spelled == []
