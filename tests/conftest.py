"""Shared fixtures: a real TimescaleDB per test session, scratch databases per need."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import psycopg
import pytest

from kapman.db.rebuild import rebuild
from tests.support import database, entry

_admin: tuple[str | None, str, object | None] | None = None

# A suite started with SIGINT ignored (a background job of a non-interactive shell) would pass that
# on to every process a test starts, and the Ctrl-C tests would test nothing: Python's own handler.
signal.signal(signal.SIGINT, signal.default_int_handler)


def _admin_info() -> tuple[str | None, str, object | None]:
    global _admin
    if _admin is None:
        _admin = database.find_admin_url()
    return _admin


@contextmanager
def _archive_dir(path: str) -> Iterator[None]:
    """KAPMAN_ARCHIVE_DIR in os.environ, so the commands tests start inherit it."""
    saved = os.environ.get("KAPMAN_ARCHIVE_DIR")
    os.environ["KAPMAN_ARCHIVE_DIR"] = path
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("KAPMAN_ARCHIVE_DIR", None)
        else:
            os.environ["KAPMAN_ARCHIVE_DIR"] = saved


@pytest.fixture(scope="session", autouse=True)
def _scratch_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Options runs archive their snapshots: into a scratch directory, never the repository's."""
    with _archive_dir(str(tmp_path_factory.mktemp("archive"))):
        yield


@pytest.fixture(autouse=True)
def _archive_per_test(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """And one per test: an archive belongs to one warehouse, and every test's scratch database is
    another warehouse (a shared directory would refuse the second one's snapshot of the same time)."""
    with _archive_dir(str(tmp_path_factory.mktemp("archive"))):
        yield


def pytest_report_header(config: pytest.Config) -> str:
    url, source, _ = _admin_info()
    if url is None:
        return f"database: none ({source}); integration tests will be skipped"
    return f"database: {database.versions(url)} via {source}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _admin is not None and _admin[2] is not None:
        _admin[2].stop()  # type: ignore[attr-defined]


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., entry.Ran]:
    """``run_main("scripts.status", "--json")`` runs ``python -m scripts.status --json`` in this
    process (``run_main(console.main, ...)`` a ``main`` itself): exit code, stdout, stderr."""
    return lambda main, *argv: entry.run(main, argv, capsys, monkeypatch)


@pytest.fixture(scope="session")
def admin_url() -> str:
    url, reason, _ = _admin_info()
    if url is None:
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def dropper(admin_url: str) -> Iterator[database.Dropper]:
    """Drops the per-test databases in the background; every one is gone when the session ends."""
    dropper = database.Dropper(admin_url)
    yield dropper
    dropper.close()


@pytest.fixture(scope="session")
def migrated_template(admin_url: str) -> Iterator[str]:
    """One database rebuilt (A5) once per session and sealed as a template; dropped at the end.

    Built on real time: each copy records the clock of the moment it is made, as a rebuild then
    would (see :func:`tests.support.database.rebuilt_copy`)."""
    url = database.template_url(admin_url)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("KAPMAN_NOW", raising=False)
            rebuild(url)
        database.seal_template(admin_url, url)
        yield url
    finally:
        database.drop_template(admin_url, url)


@pytest.fixture(scope="session")
def new_rebuilt_db(admin_url: str, migrated_template: str,
                   dropper: database.Dropper) -> database.NewRebuiltDb:
    """``with new_rebuilt_db("label_") as url:`` a scratch database as a rebuild now would leave it
    (a copy of the migrated template), dropped afterwards: for fixtures of any scope."""
    return partial(database.rebuilt_copy, admin_url, migrated_template, dropper=dropper)


@pytest.fixture(scope="session")
def templates(admin_url: str, migrated_template: str, dropper: database.Dropper) -> Iterator[database.Templates]:
    """Hydrated templates built once per session, copied per test (``database.Templates``)."""
    built = database.Templates(admin_url, migrated_template, dropper)
    yield built
    built.close()


@pytest.fixture(scope="session")
def rebuilt_db(new_rebuilt_db: database.NewRebuiltDb) -> Iterator[str]:
    """One rebuilt (A5) scratch database shared by read-only schema tests."""
    with new_rebuilt_db("schema_") as url:
        yield url


@pytest.fixture
def fresh_db(new_rebuilt_db: database.NewRebuiltDb) -> Iterator[str]:
    """A freshly rebuilt scratch database for one test that writes, dropped afterwards (a copy of
    the session's migrated template: a rebuild's result at a fraction of its cost)."""
    with new_rebuilt_db("t_") as url:
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


@pytest.fixture(autouse=True)
def _community_edition(request: pytest.FixtureRequest) -> None:
    """A test marked ``community`` needs ``timescaledb.license = timescale`` (compression, policies,
    jobs) and skips, before any other fixture of its own is built, on the Apache edition."""
    if request.node.get_closest_marker("community") is None:
        return
    edition = request.getfixturevalue("license_name")
    if edition != "timescale":
        pytest.skip(f"needs timescaledb.license = timescale (the community edition); this server's is {edition}")
