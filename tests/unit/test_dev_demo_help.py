"""./dev.sh demo --help prints the demo's help and does nothing else: no install, no server, no database."""

from __future__ import annotations

import os
import shutil
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


def _checkout_without_venv(tmp_path: Path) -> Path:
    """What the demo's help reads in a checkout where no venv with KapMan exists yet (the fallback)."""
    root = tmp_path / "checkout"
    for name in ("dev.sh", "tools/confirm.sh", "kapman/demo.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    return root


def test_demo_help_before_setup_prints_the_description(tmp_path: Path) -> None:
    root = _checkout_without_venv(tmp_path)
    proc = subprocess.run([str(root / "dev.sh"), "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert lines[0] == "The main job: the whole runbook, end to end, on the offline sandbox (or Polygon)."
    assert lines[-2:] == ["", "The full list of options: ./dev.sh setup, then ./dev.sh demo --help."]


def test_demo_help_before_setup_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """``./dev.sh demo --help | head -1`` before setup printed a BrokenPipeError traceback (exit 1)."""
    root = _checkout_without_venv(tmp_path)
    proc = subprocess.Popen([str(root / "dev.sh"), "demo", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()        # the reader is gone before the help is written
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert (proc.wait(timeout=60), err) == (141, "")
