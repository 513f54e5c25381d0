"""Shared fixtures: a real TimescaleDB per test session, scratch databases per need."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from kapman.db.rebuild import rebuild
from tests.support import database

_admin: tuple[str | None, str, object | None] | None = None


def _admin_info() -> tuple[str | None, str, object | None]:
    global _admin
    if _admin is None:
        _admin = database.find_admin_url()
    return _admin


@pytest.fixture(scope="session", autouse=True)
def _scratch_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Options runs archive their snapshots: into a scratch directory, never the repository's
    (in os.environ, so the commands tests start inherit it)."""
    saved = os.environ.get("KAPMAN_ARCHIVE_DIR")
    os.environ["KAPMAN_ARCHIVE_DIR"] = str(tmp_path_factory.mktemp("archive"))
    yield
    if saved is None:
        os.environ.pop("KAPMAN_ARCHIVE_DIR", None)
    else:
        os.environ["KAPMAN_ARCHIVE_DIR"] = saved


def pytest_report_header(config: pytest.Config) -> str:
    url, source, _ = _admin_info()
    if url is None:
        return f"database: none ({source}); integration tests will be skipped"
    return f"database: {database.versions(url)} via {source}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _admin is not None and _admin[2] is not None:
        _admin[2].stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def admin_url() -> str:
    url, reason, _ = _admin_info()
    if url is None:
        pytest.skip(reason)
    return url


@contextmanager
def _rebuilt_scratch(admin_url: str, label: str) -> Iterator[str]:
    url = database.create_scratch(admin_url, label)
    try:
        rebuild(url)
        yield url
    finally:
        database.drop_scratch(admin_url, url)


@pytest.fixture(scope="session")
def rebuilt_db(admin_url: str) -> Iterator[str]:
    """One rebuilt (A5) scratch database shared by read-only schema tests."""
    with _rebuilt_scratch(admin_url, "schema_") as url:
        yield url


@pytest.fixture
def fresh_db(admin_url: str) -> Iterator[str]:
    """A freshly rebuilt scratch database for one test that writes."""
    with _rebuilt_scratch(admin_url, "t_") as url:
        yield url


@pytest.fixture
def conn(rebuilt_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(rebuilt_db) as c:
        yield c


@pytest.fixture(scope="session")
def license_name(rebuilt_db: str) -> str:
    """The GUC exists only where the extension is loaded, so ask a rebuilt database."""
    with psycopg.connect(rebuilt_db) as c:
        return c.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]  # type: ignore[index]
