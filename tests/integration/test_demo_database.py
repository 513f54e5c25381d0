"""The demo works in a database of its own and checks every credential before it drops anything."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kapman.config import load_settings
from kapman.demo import DEMO_DATABASE, demo_url
from tests.support import database

pytestmark = pytest.mark.integration

DEMO = [sys.executable, "-m", "kapman.demo"]


@pytest.fixture
def users_db(new_rebuilt_db: database.NewRebuiltDb) -> Iterator[str]:
    """Stands in for the user's database: rebuilt, with one ticker in it."""
    with new_rebuilt_db("user_") as url:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("INSERT INTO tickers (id, symbol) VALUES (uuid_generate_v4(), 'MINE')")
        yield url


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env_file = tmp_path / ".env"
    env_file.write_text("")
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("POLYGON_", "MASSIVE_", "FLATFILES_", "DATABASE_URL", "KAPMAN_NOW"))}
    return {**keep, "KAPMAN_ENV_FILE": str(env_file), **values}


def _tickers(url: str) -> int:
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM tickers").fetchone()[0]  # type: ignore[index]


def test_the_default_demo_database_is_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_ENV_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("DATABASE_URL", "postgresql://kapman:pw@db:5432/kapman")
    settings = load_settings()
    assert demo_url(settings, None) == f"postgresql://kapman:pw@db:5432/{DEMO_DATABASE}"
    assert demo_url(settings, "postgresql://u@h/other") == "postgresql://u@h/other"


def test_live_with_only_a_rest_key_stops_before_dropping(users_db: str, tmp_path: Path) -> None:
    proc = subprocess.run([*DEMO, "--live", "--db-url", users_db, "--yes"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL,
                          env=_env(tmp_path, DATABASE_URL=users_db, POLYGON_API_KEY="rest-only-key"))
    assert proc.returncode == 2
    assert ("error: demo --live needs FLATFILES_ACCESS_KEY_ID, FLATFILES_SECRET_ACCESS_KEY (looked in the "
            "environment and .env); nothing was changed") in proc.stderr
    assert "rest-only-key" not in proc.stdout + proc.stderr
    assert _tickers(users_db) == 1


def test_live_without_any_key_names_them_all(users_db: str, tmp_path: Path) -> None:
    proc = subprocess.run([*DEMO, "--live"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=_env(tmp_path, DATABASE_URL=users_db))
    assert proc.returncode == 2
    assert "needs POLYGON_API_KEY, FLATFILES_ACCESS_KEY_ID, FLATFILES_SECRET_ACCESS_KEY" in proc.stderr
    assert _tickers(users_db) == 1


def test_a_named_database_with_data_is_not_taken_without_a_terminal(users_db: str, tmp_path: Path) -> None:
    proc = subprocess.run([*DEMO, "--db-url", users_db], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=_env(tmp_path, DATABASE_URL=users_db))
    assert proc.returncode == 2
    assert "holds data (tickers 1 rows) and the demo would destroy it" in proc.stderr
    assert "--yes" in proc.stderr
    assert _tickers(users_db) == 1
