"""./dev.sh: help, the choice of database server, and the Docker path (with a stand-in docker)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dev(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "dev.sh"), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def fake_docker(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A docker on PATH whose engine answers and which logs every call."""
    log = tmp_path / "docker.log"
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 0\n')
    script.chmod(0o755)
    return {"PATH": f"{script.parent}:{os.environ['PATH']}", "KAPMAN_DB": ""}, log


@pytest.fixture
def no_docker(tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "nodocker" / "docker"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    return {"PATH": f"{script.parent}:{os.environ['PATH']}"}


@pytest.mark.parametrize("args", [(), ("help",), ("--help",)])
def test_help_is_clean_and_exit_0(args: tuple[str, ...]) -> None:
    proc = dev(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ./dev.sh COMMAND [ARGS]")
    assert "test --fast" in proc.stdout and "KAPMAN_DB" in proc.stdout
    assert "#" not in proc.stdout and proc.stderr == ""


def test_unknown_command_is_exit_2() -> None:
    proc = dev("frobnicate")
    assert proc.returncode == 2
    assert "unknown command: frobnicate" in proc.stderr and "usage:" in proc.stderr


def test_an_invalid_kapman_db_is_refused() -> None:
    proc = dev("db", "status", env={"KAPMAN_DB": "podman"})
    assert proc.returncode == 2
    assert "KAPMAN_DB=podman: expected docker, local or external" in proc.stderr


def test_a_docker_engine_means_the_compose_database(fake_docker: tuple[dict[str, str], Path]) -> None:
    env, log = fake_docker
    proc = dev("db", "up", env=env)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert "info" in calls and "compose up -d --wait db" in calls
    assert "compose service db is up" in proc.stderr


def test_docker_chosen_explicitly_without_an_engine(no_docker: dict[str, str]) -> None:
    proc = dev("db", "up", env={**no_docker, "KAPMAN_DB": "docker"})
    assert proc.returncode == 2
    assert "KAPMAN_DB=docker but no Docker engine answers" in proc.stderr


def test_docker_url_names_the_compose_database(fake_docker: tuple[dict[str, str], Path]) -> None:
    env, _ = fake_docker
    proc = dev("db", "url", "postgres", env={**env, "POSTGRES_PASSWORD": "pw1", "KAPMAN_PGPORT": "5433"})
    assert proc.stdout.strip() == "postgresql://kapman:pw1@127.0.0.1:5433/postgres"


def test_external_starts_nothing(fake_docker: tuple[dict[str, str], Path]) -> None:
    env, log = fake_docker
    proc = dev("db", "up", env={**env, "KAPMAN_DB": "external"})
    assert proc.returncode == 0
    assert "not managed here" in proc.stderr
    assert not log.exists()


def test_the_readme_states_the_test_command_dev_sh_runs() -> None:
    """One command for the whole suite: ./dev.sh test runs what the README says it runs."""
    runs = re.findall(r'exec "\$VENV/bin/python" (-m pytest [^"]*?) ?"\$@"', (ROOT / "dev.sh").read_text())
    whole = [command for command in runs if "tests/unit" not in command]
    assert len(whole) == 1 and "--durations=15" in whole[0]
    assert f"`./dev.sh test` runs `python {whole[0]}`" in (ROOT / "README.md").read_text()
