"""Which warehouse an archive belongs to: its identity and its source, written into every manifest.

A repave drops the database, so the identity cannot live in it.  It is a name that stays the same
when the same database is paved again: ``KAPMAN_WAREHOUSE`` when set, else the database's name
and server, ``<database>@<host>:<port>`` as ``DATABASE_URL`` names them (no user, no password).
Set ``KAPMAN_WAREHOUSE`` to keep the identity when the database moves to another server or is
reached under another host name.

The source is ``sandbox`` when KapMan fetches from the offline sandbox (``POLYGON_BASE_URL`` on
this machine's loopback, where ``python -m kapman.sandbox`` serves), else ``live``.

The default archive directory is ``archive/<warehouse>/`` in the project, one per warehouse, so
the demo's database and a real warehouse never share one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from kapman.config import DEFAULT_ARCHIVE_DIR, Settings, load_settings, on_loopback
from kapman.errors import ConfigError

LIVE, SANDBOX = "live", "sandbox"
#: ``--from-warehouse`` value that accepts an archive of any warehouse (and older archives without one).
ANY = "any"


@dataclass(frozen=True)
class Warehouse:
    name: str
    source: str  # LIVE or SANDBOX

    def describe(self) -> str:
        return f"{self.name} ({self.source})"


def name_of(settings: Settings) -> str:
    if settings.warehouse:
        return settings.warehouse
    try:
        params = conninfo_to_dict(settings.require_database_url())
    except Exception as exc:  # psycopg.ProgrammingError on a malformed URL: say which setting
        raise ConfigError(f"DATABASE_URL cannot be read to name the warehouse ({type(exc).__name__})",
                          hint="fix DATABASE_URL, or set KAPMAN_WAREHOUSE") from None
    host = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")[0]
    port = str(params.get("port") or "5432").split(",")[0]
    database = str(params.get("dbname") or params.get("user") or "postgres")
    return f"{database}@{host}:{port}"


def reading(conn: psycopg.Connection, settings: Settings | None = None) -> Settings:
    """``settings`` (default: the environment's) for the warehouse that ``conn`` reads: its
    database and server name it, whatever ``DATABASE_URL`` says (``KAPMAN_WAREHOUSE`` still wins).
    The connection's parameters carry no password."""
    return replace(settings or load_settings(), database_url=conn.info.dsn)


def source_of(settings: Settings) -> str:
    return SANDBOX if on_loopback(settings.polygon_base_url) else LIVE


def of(settings: Settings) -> Warehouse:
    """This configuration's warehouse.  Raises ConfigError without a database URL or warehouse name."""
    return Warehouse(name_of(settings), source_of(settings))


def directory_name(name: str) -> str:
    """A warehouse name as one directory name (``kapman@127.0.0.1:5432`` -> ``kapman@127.0.0.1-5432``)."""
    return re.sub(r"[^A-Za-z0-9@._-]", "-", name).strip(".") or "warehouse"


def default_location(settings: Settings) -> str:
    return str(Path(DEFAULT_ARCHIVE_DIR) / directory_name(name_of(settings)))
