"""Opening connections, with failures turned into errors that say what to do."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg

from kapman.config import mask_url
from kapman.errors import ConfigError, DatabaseError

APPLICATION_NAME = "kapman"


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise ConfigError(f"database URL has no database name: {mask_url(url)}",
                          hint="end DATABASE_URL with /<database>, e.g. .../kapman")
    return name


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database (e.g. the maintenance db)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def connect(url: str, *, autocommit: bool = True, connect_timeout: int = 10) -> psycopg.Connection:
    """Autocommit by default: every unit of work states its own ``conn.transaction()``, so a
    commit is always explicit and never an accident of an earlier implicit transaction."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"not a PostgreSQL URL: {mask_url(url)}",
                          hint="use postgresql://user:password@host:port/database")
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout,
                               application_name=APPLICATION_NAME)
    except psycopg.OperationalError as exc:
        text = str(exc)
        for secret in filter(None, [urlsplit(url).password]):
            text = text.replace(secret, "***")
        reason = text.strip().splitlines()[-1] if text.strip() else "connection failed"
        if "does not exist" in text and "database" in text:
            hint = "run python -m scripts.db.a5_deterministic_rebuild to create it"
        elif "password authentication failed" in text:
            hint = "check the user and password in DATABASE_URL"
        else:
            hint = ("start the database (./dev.sh db up, or docker compose up -d db) "
                    "and check host and port in DATABASE_URL")
        raise DatabaseError(f"cannot connect to {mask_url(url)}: {reason}", sqlstate=exc.sqlstate,
                            transient=True, hint=hint) from None
