"""Run a command's ``main(argv)`` in this process, as its process would run it, and keep what it
printed: for tests where starting an interpreter (and importing numpy and pandas again) proves
nothing more.  Tests of signals, kill -9, workers and process start-up still start processes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from kapman import cli

Main = Callable[[Sequence[str] | None], int]


@dataclass(frozen=True)
class Ran:
    """What ``subprocess.run(..., capture_output=True, text=True)`` would have returned."""

    returncode: int
    stdout: str
    stderr: str


def module_main(module: str) -> Main:
    """``python -m <module>``: the module's ``main`` behind :func:`kapman.cli.run_main`, as its
    ``if __name__ == "__main__"`` block runs it."""
    main = importlib.import_module(module).main
    return lambda argv: cli.run_main(main, argv)


def run(main: Main | str, argv: Sequence[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Ran:
    """Call ``main(argv)`` (a module name means ``python -m`` it) and return its exit code (an
    uncaught ``SystemExit``'s too, argparse's for --help and usage errors) and its output."""
    target = module_main(main) if isinstance(main, str) else main
    monkeypatch.setenv("COLUMNS", "80")   # the width argparse gives a process whose output is a pipe
    capsys.readouterr()
    try:
        code = target(list(argv))
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:   # sys.exit("message"): printed to stderr, exit status 1
            print(exc.code, file=sys.stderr)
            code = 1
    out, err = capsys.readouterr()
    return Ran(code, out, err)
