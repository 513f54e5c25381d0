"""What the connected TimescaleDB can do: version, license, preload."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class ServerInfo:
    postgres_version: str
    timescaledb_available: str | None   # default_version in pg_available_extensions
    timescaledb_installed: str | None   # extversion in this database
    preloaded: bool
    license: str | None                 # 'timescale' (community) or 'apache'

    @property
    def policies_available(self) -> bool:
        """Compression and retention policies need the community (timescale) license."""
        return self.license == "timescale"

    def describe(self) -> str:
        ts = self.timescaledb_installed or self.timescaledb_available or "absent"
        return f"PostgreSQL {self.postgres_version}, TimescaleDB {ts} ({self.license or 'unknown'} license)"


def _setting(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
    return row[0] if row else None


def server_info(conn: psycopg.Connection) -> ServerInfo:
    version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    available = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    installed = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    preload = _setting(conn, "shared_preload_libraries") or ""
    return ServerInfo(
        postgres_version=version.split()[0],
        timescaledb_available=available[0] if available else None,
        timescaledb_installed=installed[0] if installed else None,
        preloaded="timescaledb" in [p.strip() for p in preload.split(",")],
        license=_setting(conn, "timescaledb.license"),
    )
