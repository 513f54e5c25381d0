"""Opening connections, with failures turned into errors that say what to do."""

from __future__ import annotations

import os
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from kapman import registry
from kapman.config import mask_url, unencoded_in_userinfo, url_password
from kapman.errors import ConfigError, DatabaseError

APPLICATION_NAME = "kapman"


def _split(url: str) -> SplitResult:
    """The URL's parts; one that is no URL (an unclosed IPv6 bracket) is refused naming the setting."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{mask_url(url)} is not a URL ({exc})",
                          hint="use postgresql://user:password@host:port/database in DATABASE_URL (or --db-url)"
                          ) from None


def _require_postgresql(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"not a PostgreSQL URL: {mask_url(url)}",
                          hint="use postgresql://user:password@host:port/database")


def database_name(url: str) -> str:
    # Checked here too: the rebuild and migrate derive the maintenance database's URL from this
    # one, and a refusal of that derived URL would name a URL nobody wrote.
    _require_postgresql(url)
    name = _split(url).path.lstrip("/")
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
    _require_postgresql(url)
    _split(url)
    unencoded = unencoded_in_userinfo(url)
    if unencoded is not None:
        char, code = unencoded
        raise ConfigError(f"the user or password of {mask_url(url)} holds '{char}': a URL reads it as the end "
                          "of the password", hint=f"percent-encode it as {code} in DATABASE_URL (or --db-url)")
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout,
                               application_name=APPLICATION_NAME)
    except psycopg.OperationalError as exc:
        raise _diagnose(url, exc) from None
    # No server-side prepared statements: psycopg prepares a query run five times, and a generic
    # plan the server then caches keeps a compressed chunk's plan after a write left the chunk
    # partly decompressed (TimescaleDB's community edition), so it misses the moved rows: "does
    # this day have rows?" answered no for a day that had them, and the load failed on its key.
    conn.prepare_threshold = None
    return conn


def _server_answers(url: str) -> bool:
    """Whether anything listens where the URL points (a socket path, or host and port)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        return False
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def _socket_file(url: str) -> str | None:
    """The Unix socket the URL names (``?host=/var/run/postgresql``), or None for a TCP host."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return None
    host = str(params.get("host") or "").split(",")[0]
    if not host.startswith("/"):
        return None
    return os.path.join(host, f".s.PGSQL.{str(params.get('port') or 5432).split(',')[0]}")


def _nothing_answers(where: str, at: str) -> DatabaseError:
    return DatabaseError(f"cannot connect to {where}: no database server answers {at}", sqlstate="08001",
                         transient=True, hint=f"{registry.start_server_hint()} and check host and port in DATABASE_URL")


def _refused_by_libpq(url: str) -> str | None:
    """libpq's reason when it refuses the URL's options before connecting (``sslmode=bogus``, a
    port that is no number), else None: such a URL is refused before any server is asked, so
    asking the server what went wrong would blame the credentials."""
    try:
        pgconn = psycopg.pq.PGconn.connect_start(url.encode())
    except psycopg.Error as exc:
        return str(exc).strip() or "invalid connection options"
    try:
        if pgconn.status != psycopg.pq.ConnStatus.BAD:
            return None
        return pgconn.get_error_message().strip() or "invalid connection options"
    finally:
        pgconn.finish()


def _diagnose(url: str, exc: psycopg.OperationalError) -> DatabaseError:
    """Why a connection failed, told by what answers rather than by the text of libpq's message
    (libpq gives connection failures no SQLSTATE, and the text is localised by the server):
    nothing listening (08001, transient); the maintenance database accepts the same credentials
    (3D000, the database is missing); or it does not (28P01, the credentials are refused)."""
    where = mask_url(url)
    refused = _refused_by_libpq(url)
    socket_file = _socket_file(url)
    if refused is not None and socket_file is not None and not os.path.exists(socket_file):
        return _nothing_answers(where, f"at {socket_file}")   # libpq fails a missing socket at once too
    if refused is not None:
        return DatabaseError(f"cannot connect to {where}: {_one_line(_masked(url, refused))}",
                             sqlstate="08001", transient=False,
                             hint="fix the connection options in DATABASE_URL (or --db-url)")
    if not _server_answers(url):
        return _nothing_answers(where, "there")
    name = urlsplit(url).path.lstrip("/")
    maintenance = "template1" if name == "postgres" else "postgres"
    try:
        with psycopg.connect(with_database(url, maintenance), connect_timeout=5,
                             application_name=APPLICATION_NAME) as conn:
            exists = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)",
                                  (name,)).fetchone()
    except psycopg.Error:
        return DatabaseError(f"cannot connect to {where}: the server refused the user or password",
                             sqlstate="28P01", transient=False,
                             hint="check the user and password in DATABASE_URL (.env or the environment)")
    if exists and not exists[0]:
        return DatabaseError(f"cannot connect to {where}: database {name!r} does not exist",
                             sqlstate="3D000", transient=False,
                             hint=f"run {registry.mend('rebuild')} to create it")
    reason = _one_line(_masked(url, str(exc))) or "connection failed"
    return DatabaseError(f"cannot connect to {where}: {reason}", sqlstate="08004", transient=True,
                         hint="the server rejected the connection; check its logs and max_connections")


def _one_line(text: str) -> str:
    """libpq's message on one line: its lines (the failure, then a tab-indented question) joined."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _masked(url: str, text: str) -> str:
    """``text`` without the URL's password."""
    for secret in filter(None, [url_password(url), urlsplit(url).password]):
        text = text.replace(secret, "***")
    return text


def unlock(conn: psycopg.Connection, statement: str, params: tuple[object, ...]) -> None:
    """Release a session-level advisory lock now, where the connection can still run it.  Closing
    alone releases it only once the server has ended the session, a moment after close() returns on
    a loaded server, and the step that follows at once finds the lock still held.  A lost connection
    or a killed process leaves it to the session's end, as before."""
    try:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.execute(statement, params)
    except psycopg.Error:
        pass
