"""Where integration tests get their TimescaleDB, and their own scratch databases.

Order: KAPMAN_TEST_DATABASE_URL (an admin URL); else a testcontainers TimescaleDB when a Docker
engine answers; else the project's local server (tools/localdb.sh) if it is running.  Tests only
ever create, use and drop databases named kapman_test_<pid>_<random>.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from kapman.db.connect import with_database

ROOT = Path(__file__).resolve().parents[2]
TIMESCALE_IMAGE = "timescale/timescaledb:2.19.3-pg15"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_admin_url() -> tuple[str | None, str, object | None]:
    """(admin url or None, where it came from or why none, a container to stop later)."""
    explicit = os.environ.get("KAPMAN_TEST_DATABASE_URL")
    if explicit:
        return explicit, "KAPMAN_TEST_DATABASE_URL", None
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(TIMESCALE_IMAGE, username="kapman", password="kapman", dbname="postgres")
        container.start()
        url = container.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
        return url, f"testcontainers {TIMESCALE_IMAGE}", container
    local = subprocess.run([str(ROOT / "tools" / "localdb.sh"), "url", "postgres"],
                           capture_output=True, text=True).stdout.strip()
    if local and _reachable(local):
        return local, "local server (tools/localdb.sh)", None
    return None, ("no TimescaleDB: set KAPMAN_TEST_DATABASE_URL, run a Docker engine, "
                  "or start the local server with ./dev.sh db up"), None


def create_scratch(admin_url: str, label: str = "") -> str:
    name = f"kapman_test_{os.getpid()}_{label}{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def drop_scratch(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    assert name.startswith("kapman_test_"), name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def versions(admin_url: str) -> str:
    with psycopg.connect(admin_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        ts = conn.execute("SELECT default_version FROM pg_available_extensions "
                          "WHERE name = 'timescaledb'").fetchone()
        lic = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]  # type: ignore[index]
    return f"PostgreSQL {pg}, TimescaleDB {ts[0] if ts else 'absent'} ({lic} license)"
