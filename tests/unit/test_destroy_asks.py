"""./dev.sh db destroy says what it destroys and asks, or takes --yes (on a scratch cluster root)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A stand-in cluster directory under a scratch KAPMAN_PGROOT (the server is not running there)."""
    if os.geteuid() != 0:
        pytest.skip("tools/localdb.sh destroy runs as root")
    data = tmp_path / "pg15"
    (data / "base").mkdir(parents=True)
    (data / "base" / "1").write_bytes(b"x" * 4096)
    return {"KAPMAN_DB": "local", "KAPMAN_PGROOT": str(tmp_path)}, data


def destroy(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "dev.sh"), "db", "destroy", *args], capture_output=True, text=True,
                          timeout=60, input=stdin, env={**os.environ, **env})


def test_without_a_terminal_or_yes_nothing_is_destroyed(cluster: tuple[dict[str, str], Path]) -> None:
    env, data = cluster
    proc = destroy(env, stdin="destroy\n")       # piped input is not a terminal: never taken as consent
    assert proc.returncode == 2
    assert f"the local PostgreSQL cluster {data}" in proc.stderr and "every database in it" in proc.stderr
    assert "pass --yes" in proc.stderr and data.exists()


def test_yes_destroys_and_says_what(cluster: tuple[dict[str, str], Path]) -> None:
    env, data = cluster
    proc = destroy(env, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "this destroys, for good:" in proc.stderr and f"destroyed {data}" in proc.stderr
    assert not data.exists()
