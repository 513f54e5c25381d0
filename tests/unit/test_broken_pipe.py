"""A reader that stops reading (``kapman screen ... --csv | head``) is no error of KapMan's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_output_into_a_closed_pipe_ends_quietly_with_141() -> None:
    # the reading end is closed before the command (still importing) writes a line
    proc = subprocess.Popen([sys.executable, "-m", "kapman.screen", "--columns"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    # it was "error: ... unexpected BrokenPipeError ... this is a bug in KapMan", exit 2
    assert err == ""
