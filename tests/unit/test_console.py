"""The kapman command: every step as a subcommand, on the same parser and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kapman import registry


def _kapman(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from kapman.console import entry; entry()", *args],
                          capture_output=True, text=True, timeout=60)


def test_no_argument_prints_the_overview_and_exits_0() -> None:
    proc = _kapman()
    assert proc.returncode == 0 and proc.stderr == ""
    for step in registry.STEPS:
        assert f"  {step.name}" in proc.stdout


def test_an_unknown_command_exits_2_with_the_overview() -> None:
    proc = _kapman("frobnicate")
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr


@pytest.mark.parametrize("name", ["a2", "a3", "ohlcv", "rebuild"])
def test_a_subcommand_shows_its_steps_help_under_its_own_name(name: str) -> None:
    proc = _kapman(name, "--help")
    module = registry.get(name).script
    direct = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"usage: kapman {name}")
    def options(text: str) -> str:   # the option list; the examples keep the runbook's spelling
        return text.split("options:")[1].split("examples:")[0]

    assert options(proc.stdout) == options(direct.stdout)


def test_abbreviations_are_refused() -> None:
    proc = _kapman("a2", "--for")
    assert proc.returncode == 2 and "unrecognized arguments: --for" in proc.stderr


def test_a_mistyped_url_option_does_not_echo_the_password() -> None:
    proc = _kapman("ohlcv", "--dburl", "postgresql://kapman:s3cr3t-pw@db:5432/kapman", "base")
    assert proc.returncode == 2 and "s3cr3t-pw" not in proc.stderr + proc.stdout
