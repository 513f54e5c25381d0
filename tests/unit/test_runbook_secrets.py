"""The demo's psql steps: the database password never on psql's command line (``ps`` shows it to
every local user), but in its environment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kapman import runbook


def test_psql_gets_the_url_without_its_password_and_pgpassword_instead() -> None:
    step = runbook.dashboard_steps()[0]
    url = "postgresql://kap:s%40cret:pw@db.example:5433/kapman_demo?sslmode=disable"
    argv = step.argv(url)
    assert "postgresql://kap@db.example:5433/kapman_demo?sslmode=disable" in argv
    assert not any("cret" in a for a in argv)
    assert step.secret_env(url) == {"PGPASSWORD": "s@cret:pw"}
    assert step.secret_env("postgresql://kap@h/db") == {}
    python = runbook.schema_and_reference_steps()[1]
    assert python.secret_env(url) == {} and url not in python.argv(url)  # no $DATABASE_URL there


def test_run_step_hands_psql_the_password_in_its_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "psql"
    record = tmp_path / "seen"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" > {record}\nprintf "%s\\n" "$PGPASSWORD" >> {record}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    step = runbook.dashboard_steps()[0]
    done = runbook.run_step(step, {}, "postgresql://kap:hunter22@127.0.0.1:1/x", quiet=True)
    args, password = record.read_text().splitlines()
    assert done.returncode == 0 and "hunter22" not in args and "postgresql://kap@127.0.0.1:1/x" in args
    assert password == "hunter22"
