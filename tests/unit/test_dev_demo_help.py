"""./dev.sh demo --help prints the demo's help and does nothing else: no install, no server, no database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_help_installs_and_starts_nothing(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for tool in ("docker", "apt-get", "psql", "pg_ctlcluster", "systemctl"):   # any of them called is logged
        (stubs / tool).write_text(f'#!/bin/sh\necho "{tool} $@" >> {log}\nexit 1\n')
        (stubs / tool).chmod(0o755)
    venv_stamp = ROOT / "venv" / ".kapman-installed"
    before = venv_stamp.stat().st_mtime_ns if venv_stamp.exists() else None
    for flag in ("--help", "-h"):
        proc = subprocess.run([str(ROOT / "dev.sh"), "demo", "--tickers", "50", flag], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"})
        assert proc.returncode == 0, proc.stderr
        assert "The main job: the whole runbook, end to end, on the offline sandbox" in proc.stdout
        assert proc.stderr == ""                     # no "dev: installing ..." or "creating venv/"
    assert not log.exists(), log.read_text()
    assert (venv_stamp.stat().st_mtime_ns if venv_stamp.exists() else None) == before
