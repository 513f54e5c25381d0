"""Where integration tests get their TimescaleDB, and their own scratch databases.

Order: KAPMAN_TEST_DATABASE_URL (an admin URL); else a testcontainers TimescaleDB when a Docker
engine answers; else the project's local server (tools/localdb.sh) if it is running.  Tests only
ever create, use and drop databases named kapman_test_<pid>_<random>, and one template per session,
kapman_test_<pid>_template: rebuilt once, sealed, and cloned (``CREATE DATABASE ... TEMPLATE``)
wherever a test needs a freshly rebuilt database, which costs a third of a rebuild.
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from kapman.db import lifecycle
from kapman.db.connect import connect, with_database

ROOT = Path(__file__).resolve().parents[2]
#: The ``new_rebuilt_db`` fixture: ``with new_rebuilt_db("label_") as url:``
NewRebuiltDb = Callable[[str], AbstractContextManager[str]]
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


def scratch_url(admin_url: str, label: str = "") -> str:
    """A new scratch database's URL, the database not created yet."""
    return with_database(admin_url, f"kapman_test_{os.getpid()}_{label}{secrets.token_hex(3)}")


def create_scratch(admin_url: str, label: str = "", *, template: str | None = None) -> str:
    url = scratch_url(admin_url, label)
    name = _own(url)
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)
    return url


def drop_scratch(admin_url: str, url: str) -> None:
    name = _own(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _own(url: str) -> str:
    name = url.rsplit("/", 1)[1]
    assert name.startswith("kapman_test_"), name
    return name


class Dropper:
    """Drops scratch databases on a thread of its own.  Each DROP DATABASE waits for a checkpoint
    of the whole server (seconds while other sessions write), which no test needs to wait for;
    the databases that finished meanwhile are dropped together, so their drops share one
    checkpoint.  :meth:`close` waits for every drop and raises the first that failed."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._pending: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._failures: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, name="scratch-dropper", daemon=True)
        self._thread.start()

    def drop(self, url: str) -> None:
        _own(url)
        self._pending.put(url)

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join()
        if self._failures:
            raise self._failures[0]

    def _work(self) -> None:
        closing = False
        while not closing:
            batch = [self._pending.get()]
            while not self._pending.empty():
                batch.append(self._pending.get())
            closing = None in batch
            urls = [url for url in batch if url is not None]
            with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
                for done in [pool.submit(drop_scratch, self._admin_url, url) for url in urls]:
                    if done.exception() is not None:   # reported by close(), on the main thread
                        self._failures.append(done.exception())  # type: ignore[arg-type]


# --- one template per session ----------------------------------------------------------------------

def template_url(admin_url: str) -> str:
    """This process's template (parallel sessions on one server each have their own)."""
    return with_database(admin_url, f"kapman_test_{os.getpid()}_template")


def seal_template(admin_url: str, url: str) -> None:
    """No session may connect to the template any more (CREATE DATABASE ... TEMPLATE needs it idle;
    on the community edition TimescaleDB's scheduler would otherwise keep a session on it)."""
    ident = sql.Identifier(_own(url))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true").format(ident))
        for _ in range(100):
            left = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = %s", (_own(url),)).fetchone()[0]  # type: ignore[index]
            if not left:
                return
            time.sleep(0.05)
        raise AssertionError(f"sessions still connected to {_own(url)}")


#: The one per-database setting a scratch copy carries that a rebuild does not (see ``clone``).
SCRATCH_SETTING = "synchronous_commit=off"


def clone(admin_url: str, template: str, label: str = "") -> str:
    """A new scratch database copied from ``template``, with the template's per-database settings
    (``ALTER DATABASE ... SET``, which a copy does not carry)."""
    url = create_scratch(admin_url, label, template=_own(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # A scratch database outlives no server crash worth surviving: its commits need not wait
        # for the WAL flush (1.7 ms a commit here, 0.1 ms without; a kill -9 of a client still
        # loses nothing committed).
        name, value = SCRATCH_SETTING.split("=")
        conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(sql.Identifier(_own(url)), sql.Identifier(name),
                                                                    sql.Literal(value)))
        settings = conn.execute(
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
            "WHERE d.datname = %s AND s.setrole = 0", (_own(template),)).fetchall()
        for (setting,) in settings:
            name, value = setting.split("=", 1)
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(_own(url)), sql.SQL(".").join(map(sql.Identifier, name.split("."))),
                sql.Literal(value)))
    return url


def drop_template(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(_own(url))))
    drop_scratch(admin_url, url)


def versions(admin_url: str) -> str:
    with psycopg.connect(admin_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        ts = conn.execute("SELECT default_version FROM pg_available_extensions "
                          "WHERE name = 'timescaledb'").fetchone()
        lic = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]  # type: ignore[index]
    return f"PostgreSQL {pg}, TimescaleDB {ts[0] if ts else 'absent'} ({lic} license)"


@contextmanager
def rebuilt_copy(admin_url: str, template: str, label: str, dropper: Dropper) -> Iterator[str]:
    """A scratch database indistinguishable from one rebuilt now: a copy of the migrated template
    (schema, migration ledger, per-database settings) whose lifecycle clock is recorded from this
    process's clock (``KAPMAN_NOW`` as set at this moment), exactly as the rebuild records it."""
    url = clock_recorded_clone(admin_url, template, label)
    try:
        yield url
    finally:
        dropper.drop(url)


def clock_recorded_clone(admin_url: str, template: str, label: str) -> str:
    """A copy of ``template`` with the lifecycle clock recorded from this process's, as a rebuild does."""
    url = clone(admin_url, template, label)
    with connect(url) as conn:
        lifecycle.record_clock(conn, lifecycle.process_clock())
    return url


class Templates:
    """Hydrated templates: a database built once per session (tickers, bars, snapshots: what a
    module's tests start from), sealed as a template and copied for each test, so each test still
    gets a database of its own to change, in the time of a copy rather than of a hydration."""

    def __init__(self, admin_url: str, migrated_template: str, dropper: Dropper) -> None:
        self._admin_url, self._migrated, self._dropper = admin_url, migrated_template, dropper
        self._built: dict[str, str] = {}

    @contextmanager
    def copy(self, name: str, build: Callable[[str], None], label: str = "") -> Iterator[str]:
        """A copy of template ``name``, built on first use by ``build(url)`` on a rebuilt database
        (which must close its connections); dropped afterwards."""
        template = self._built.get(name) or self._build(name, build)
        url = clone(self._admin_url, template, label or f"{name}_")
        try:
            yield url
        finally:
            self._dropper.drop(url)

    def _build(self, name: str, build: Callable[[str], None]) -> str:
        url = clock_recorded_clone(self._admin_url, self._migrated, f"tpl_{name}_")
        build(url)
        seal_template(self._admin_url, url)
        self._built[name] = url
        return url

    def close(self) -> None:
        for url in self._built.values():
            drop_template(self._admin_url, url)
