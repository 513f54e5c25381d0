"""Settings: one precedence (environment, then ``.env``, then defaults), validated once.

Every variable is documented in ``.env.example``.  Secrets (the database password, the API key,
the flat-file secret) never appear in ``repr`` or in messages: use :func:`mask_url` for URLs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

from kapman.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLYGON_BASE = "https://api.massive.com"
DEFAULT_FLATFILES_ENDPOINT = "https://files.massive.com"
DEFAULT_FLATFILES_BUCKET = "flatfiles"
DEFAULT_STOCKS_PREFIX = "us_stocks_sip/day_aggs_v1"


def mask_url(url: str | None) -> str:
    """``postgresql://kapman:***@host:5432/db``: the password (and any query secrets) hidden."""
    if not url:
        return "<unset>"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(
        f"{k.split('=', 1)[0]}=***" if k.lower().startswith(("password", "apikey", "api_key")) else k
        for k in parts.query.split("&")
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secret(value: str | None) -> str:
    return "<unset>" if not value else "***"


def _env(merged: dict[str, str], name: str, default: str | None = None) -> str | None:
    value = merged.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _positive_float(merged: dict[str, str], name: str, default: float) -> float:
    raw = _env(merged, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number", hint=f"set {name} to a positive number") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw}", hint=f"set {name} to a positive number")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    polygon_api_key: str | None = field(default=None)
    polygon_base_url: str = DEFAULT_POLYGON_BASE
    #: Shared request budget for the REST API (requests per second, all workers together).
    polygon_rate_limit: float = 50.0
    polygon_connect_timeout: float = 10.0
    polygon_read_timeout: float = 30.0
    polygon_max_retries: int = 6
    flatfiles_endpoint: str = DEFAULT_FLATFILES_ENDPOINT
    flatfiles_bucket: str = DEFAULT_FLATFILES_BUCKET
    flatfiles_stocks_prefix: str = DEFAULT_STOCKS_PREFIX
    flatfiles_access_key_id: str | None = None
    flatfiles_secret_access_key: str | None = None
    #: A local directory laid out like the bucket; when set it replaces S3.
    flatfiles_mirror_dir: Path | None = None
    watchlists_dir: Path = PROJECT_ROOT / "data" / "watchlists"

    def __repr__(self) -> str:  # never leak secrets
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "database_url":
                value = mask_url(value)
            elif f.name in {"polygon_api_key", "flatfiles_secret_access_key", "flatfiles_access_key_id"}:
                value = _secret(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "DATABASE_URL is not set (looked in the environment and .env)",
                hint="copy .env.example to .env, or pass --db-url postgresql://user:password@host:port/db",
            )
        return self.database_url

    def require_polygon_api_key(self) -> str:
        if not self.polygon_api_key:
            raise ConfigError(
                "POLYGON_API_KEY is not set (looked in the environment and .env)",
                hint="put your Polygon/Massive API key in .env, or start the offline sandbox "
                     "(python -m kapman.sandbox serve) and use the environment it prints",
            )
        return self.polygon_api_key

    def secrets(self) -> list[str]:
        """Every secret value in force, so output scrubbers can hide them."""
        out = [s for s in (self.polygon_api_key, self.flatfiles_secret_access_key) if s]
        if self.database_url:
            pw = urlsplit(self.database_url).password
            if pw:
                out.append(pw)
        return out


def load_settings(env_file: Path | None = None, *, database_url: str | None = None) -> Settings:
    """Read settings: process environment first, then ``.env`` (project root or ``env_file``)."""
    path = env_file or Path(os.environ.get("KAPMAN_ENV_FILE", PROJECT_ROOT / ".env"))
    file_values = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    merged = {**file_values, **os.environ}
    # The sandbox and tests set KAPMAN_NOW in .env too; make it visible to kapman.clock.
    if "KAPMAN_NOW" in file_values and "KAPMAN_NOW" not in os.environ:
        os.environ["KAPMAN_NOW"] = file_values["KAPMAN_NOW"]
    mirror = _env(merged, "FLATFILES_MIRROR_DIR")
    watch = _env(merged, "KAPMAN_WATCHLISTS_DIR")
    retries_raw = _env(merged, "POLYGON_MAX_RETRIES", "6") or "6"
    try:
        retries = int(retries_raw)
    except ValueError:
        raise ConfigError(f"POLYGON_MAX_RETRIES={retries_raw!r} is not an integer") from None
    base = (_env(merged, "POLYGON_BASE_URL", DEFAULT_POLYGON_BASE) or DEFAULT_POLYGON_BASE).rstrip("/")
    if urlsplit(base).path not in ("", "/"):
        raise ConfigError(f"POLYGON_BASE_URL must have no path, got {base}",
                          hint="use e.g. https://api.massive.com")
    return Settings(
        database_url=database_url or _env(merged, "DATABASE_URL"),
        polygon_api_key=_env(merged, "POLYGON_API_KEY") or _env(merged, "MASSIVE_API_KEY"),
        polygon_base_url=base,
        polygon_rate_limit=_positive_float(merged, "POLYGON_RATE_LIMIT", 50.0),
        polygon_connect_timeout=_positive_float(merged, "POLYGON_CONNECT_TIMEOUT", 10.0),
        polygon_read_timeout=_positive_float(merged, "POLYGON_READ_TIMEOUT", 30.0),
        polygon_max_retries=retries,
        flatfiles_endpoint=_env(merged, "FLATFILES_ENDPOINT", DEFAULT_FLATFILES_ENDPOINT) or "",
        flatfiles_bucket=_env(merged, "FLATFILES_BUCKET", DEFAULT_FLATFILES_BUCKET) or "",
        flatfiles_stocks_prefix=(_env(merged, "FLATFILES_STOCKS_PREFIX", DEFAULT_STOCKS_PREFIX) or "").strip("/"),
        flatfiles_access_key_id=_env(merged, "FLATFILES_ACCESS_KEY_ID"),
        flatfiles_secret_access_key=_env(merged, "FLATFILES_SECRET_ACCESS_KEY"),
        flatfiles_mirror_dir=Path(mirror) if mirror else None,
        watchlists_dir=Path(watch) if watch else PROJECT_ROOT / "data" / "watchlists",
    )
