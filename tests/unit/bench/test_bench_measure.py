"""bench.measure: each command's own peak memory, whatever ran before it (issue: a suite's figure
must not be the largest child an earlier suite waited for)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench.measure import run_command


@pytest.fixture
def allocator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module that holds N MiB, optionally in a child process it waits for, then exits 3."""
    (tmp_path / "hold_memory.py").write_text(textwrap.dedent("""
        import multiprocessing, sys

        def hold(mib):
            block = bytearray(mib * 1024 * 1024)
            block[::4096] = b"x" * len(block[::4096])

        if __name__ == "__main__":
            mib, child = int(sys.argv[1]), int(sys.argv[2])
            hold(mib)
            if child:
                p = multiprocessing.get_context("spawn").Process(target=hold, args=(child,))
                p.start(); p.join()
            print("held", mib)
            sys.exit(3)
    """))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{Path(__file__).resolve().parents[3]}")
    return "hold_memory"


def test_each_command_is_measured_alone(allocator: str) -> None:
    import os

    # this process holds 400 MiB as the child is started: Linux's ru_maxrss would count it
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    big = run_command(allocator, ["300", "0"], os.environ)
    small = run_command(allocator, ["20", "0"], os.environ)
    assert (big.returncode, small.returncode) == (3, 3) and small.stdout.strip() == "held 20"
    assert big.main_mib > 300 and small.main_mib < 120 and small.peak_mib < 120  # not the earlier 300
    with_child = run_command(allocator, ["20", "250"], os.environ)
    assert with_child.main_mib < 120 < 250 < with_child.children_mib and with_child.peak_mib >= 250
    del ballast
