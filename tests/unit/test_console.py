"""The kapman command: every step as a subcommand, on the same parser and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from kapman import console, registry
from tests.support.entry import Ran

RunMain = Callable[..., Ran]


def test_no_argument_prints_the_overview_and_exits_0() -> None:
    """The one process here: the console entry point exits with main's code."""
    proc = subprocess.run([sys.executable, "-c", "from kapman.console import entry; entry()"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    for step in registry.STEPS:
        assert f"  {step.name}" in proc.stdout


def test_an_unknown_command_exits_2_with_the_overview(run_main: RunMain) -> None:
    proc = run_main(console.main, "frobnicate")
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr


def test_a_mistyped_command_names_the_nearest_and_json_gets_one_object(run_main: RunMain) -> None:
    proc = run_main(console.main, "scren", "rsi < 30", "--json")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "kapman: unknown command 'scren'; did you mean screen?"
    assert json.loads(proc.stdout) == {"status": "error", "error": "kapman: unknown command 'scren'; did you mean "
                                       "screen?", "hint": "kapman --help lists the commands", "exit_code": 2}


def test_an_option_before_the_command_says_where_it_goes(run_main: RunMain) -> None:
    """'kapman --json screen ...' was 'unknown command --json'."""
    proc = run_main(console.main, "--json", "screen", "rsi < 30")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "kapman: --json goes after the command (kapman <command> --json ...)"
    assert json.loads(proc.stdout)["status"] == "error"


@pytest.mark.parametrize("name", ["a2", "a3", "ohlcv", "rebuild"])
def test_a_subcommand_shows_its_steps_help_under_its_own_name(name: str, run_main: RunMain) -> None:
    proc = run_main(console.main, name, "--help")
    module = registry.get(name).script
    direct = run_main(module, "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"usage: kapman {name}")
    def options(text: str) -> str:   # the option list; the examples keep the runbook's spelling
        return text.split("options:")[1].split("examples:")[0]

    assert options(proc.stdout) == options(direct.stdout)


def test_abbreviations_are_refused(run_main: RunMain) -> None:
    proc = run_main(console.main, "a2", "--for")
    assert proc.returncode == 2 and "unrecognized arguments: --for" in proc.stderr


def test_a_mistyped_url_option_does_not_echo_the_password(run_main: RunMain) -> None:
    proc = run_main(console.main, "ohlcv", "--dburl", "postgresql://kapman:s3cr3t-pw@db:5432/kapman", "base")
    assert proc.returncode == 2 and "s3cr3t-pw" not in proc.stderr + proc.stdout
