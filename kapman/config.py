"""Settings: one precedence (environment, then ``.env``, then defaults), validated once.

Every variable is documented in ``.env.example``.  Secrets (the database password, the API key,
the flat-file secret) never appear in ``repr`` or in messages: use :func:`mask_url` for URLs.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from kapman import registry
from kapman.clock import INSTANT_FORMS, parse_instant
from kapman.errors import ConfigError
from kapman.registry import CHECKOUT
from kapman.ticker_types import DEFAULT_TYPES, parse_types

#: Where ``.env``, ``archive/``, ``logs/`` and ``data/watchlists/`` are: ``KAPMAN_HOME`` when set, else
#: the checkout, else (an installed package) the working directory: never inside site-packages.
PROJECT_ROOT = Path(os.environ.get("KAPMAN_HOME") or CHECKOUT or Path.cwd()).resolve()
DEFAULT_POLYGON_BASE = "https://api.massive.com"
DEFAULT_FLATFILES_ENDPOINT = "https://files.massive.com"
DEFAULT_FLATFILES_BUCKET = "flatfiles"
DEFAULT_STOCKS_PREFIX = "us_stocks_sip/day_aggs_v1"
#: Where the options snapshot archives live by default: one directory per warehouse below it.
DEFAULT_ARCHIVE_DIR = PROJECT_ROOT / "archive"


#: Query parameters and DSN keys whose value is a secret (compared case-insensitively,
#: after percent-decoding the key).
SECRET_KEYS = ("password", "passwd", "pass", "pwd", "sslpassword", "apikey", "api_key", "secret", "token")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.S)
_DSN_SECRET = re.compile(r"(?i)\b(" + "|".join(SECRET_KEYS) + r")(\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]*)=([^&#;]*)")
#: A URL inside free text (a usage error, a log line): scheme://, then up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def _is_secret_key(key: str) -> bool:
    return unquote(key).strip().lower() in SECRET_KEYS


def _mask_query(text: str) -> str:
    return _QUERY_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}=***" if _is_secret_key(m.group(2))
                           else m.group(0), text)


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """(userinfo, host and the rest) of what follows ``scheme://``.

    The userinfo ends at the *last* ``@``: a password may hold unencoded ``/``, ``@``, ``:``, ``?``
    or ``#``, which a standard parser would take for the start of the host or path and so print
    its tail.  An ``@`` inside the query makes this hide too much, never too little."""
    if "@" not in rest:
        return None, rest
    userinfo, host = rest.rsplit("@", 1)
    return userinfo, host


def unencoded_in_userinfo(url: str) -> tuple[str, str] | None:
    """(character, encoding) when the URL's user or password holds one of ``@ / ? #`` unencoded, else None.

    libpq ends the userinfo at the first ``@`` or ``/`` (and the URL parsers at ``?`` and ``#`` too),
    so it would read the rest of the password as the host, port or database, and print that in its
    error.  Told from where the parts of a standard split land: a second ``@`` in the host part, an
    ``@`` in the path or in a query parameter's name, or any fragment."""
    parts = urlsplit(url)
    if parts.netloc.count("@") > 1:
        return "@", "%40"
    if "@" in parts.path:
        return "/", "%2F"
    if any("@" in item.split("=", 1)[0] for item in parts.query.split("&")):
        return "?", "%3F"
    if parts.fragment or url.endswith("#"):
        return "#", "%23"
    return None


def url_password(url: str | None) -> str | None:
    """The password a URL carries in its userinfo (as written, percent-encoding undone)."""
    match = _SCHEME.match(url or "")
    if not match:
        return None
    userinfo, _ = _split_userinfo(match.group(2))
    if userinfo is None or ":" not in userinfo:
        return None
    return unquote(userinfo.split(":", 1)[1]) or None


def mask_url(url: str | None) -> str:
    """``postgresql://kapman:***@host:5432/db``: every password the URL carries hidden.

    Covers a password in the userinfo (encoded or not, with ``/ @ : ? #`` in it), secret query
    parameters (``password=``, ``sslpassword=``, ... with the key percent-encoded or not) and libpq
    ``key=value`` connection strings (``host=h password='x y'``)."""
    if not url:
        return "<unset>"
    match = _SCHEME.match(url)
    if not match:
        return _DSN_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", url)
    scheme, rest = match.groups()
    userinfo, host = _split_userinfo(rest)
    if userinfo is None:
        return scheme + _mask_query(rest)
    user = userinfo.split(":", 1)[0]
    shown = f"{user}:***" if ":" in userinfo else user
    return f"{scheme}{shown}@{_mask_query(host)}"


def mask_secrets_in(text: str) -> str:
    """Free text with every URL in it masked, and any ``password=...`` pair outside one."""
    masked = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
    return _DSN_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", masked)


class NumberRange:
    """A closed (or left-open) numeric range, and the one message for a value outside it."""

    def __init__(self, low: float, high: float, *, integer: bool = False, low_open: bool = False) -> None:
        self.low, self.high, self.integer, self.low_open = low, high, integer, low_open

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}]"

    def parse(self, raw: str) -> int | float:
        """The value, or ValueError saying why not (NaN and infinities are never in range)."""
        try:
            value: int | float = int(raw) if self.integer else float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not {'an integer' if self.integer else 'a number'}; "
                             f"expected {self}") from None
        if (not math.isfinite(value) or value < self.low or value > self.high
                or (self.low_open and value == self.low)):
            raise ValueError(f"{raw!r} is out of range; expected {self}")
        return value


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def env_number(merged: dict[str, str], name: str, default: float, allowed: NumberRange) -> int | float:
    """A numeric setting from the environment or ``.env``, validated against ``allowed``."""
    raw = _env(merged, name)
    if raw is None:
        return default
    try:
        return allowed.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={exc}", hint=f"set {name} to {allowed}") from None


def bounded(low: float, high: float, *, integer: bool = False, low_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=`` for a numeric flag: the value, or a usage error that states its range."""
    allowed = NumberRange(low, high, integer=integer, low_open=low_open)

    def parse(raw: str) -> int | float:
        try:
            return allowed.parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def _secret(value: str | None) -> str:
    return "<unset>" if not value else "***"


def _env(merged: dict[str, str], name: str, default: str | None = None) -> str | None:
    value = merged.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


#: Ranges of the REST client's settings.  The rate limit's floor is a little below the free plan's
#: 5 requests per minute (0.083/s); slower would wait minutes per request.
RATE_LIMIT_RANGE = NumberRange(0.05, 1000.0)
TIMEOUT_RANGE = NumberRange(0.1, 600.0)
RETRIES_RANGE = NumberRange(0, 20, integer=True)
#: Seconds per request, retries and waits (Retry-After) included; seconds per options run.
REQUEST_DEADLINE_RANGE = NumberRange(1.0, 3600.0)
RUN_DEADLINE_RANGE = NumberRange(10.0, 86400.0)


_SECRET_FIELDS = frozenset({"polygon_api_key", "flatfiles_secret_access_key", "flatfiles_access_key_id",
                            "archive_access_key_id", "archive_secret_access_key"})


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
    #: Seconds one request may take with its retries and waits (Retry-After included).
    polygon_request_deadline: float = 120.0
    #: Seconds an options run may fetch for; symbols not fetched by then fail with that reason.
    options_run_deadline: float = 3600.0
    flatfiles_endpoint: str = DEFAULT_FLATFILES_ENDPOINT
    flatfiles_bucket: str = DEFAULT_FLATFILES_BUCKET
    flatfiles_stocks_prefix: str = DEFAULT_STOCKS_PREFIX
    flatfiles_access_key_id: str | None = None
    flatfiles_secret_access_key: str | None = None
    #: A local directory laid out like the bucket; when set it replaces S3.
    flatfiles_mirror_dir: Path | None = None
    watchlists_dir: Path = field(default_factory=lambda: default_watchlists_dir())
    #: Security types of the ticker universe (KAPMAN_TICKER_TYPES).
    ticker_types: tuple[str, ...] = DEFAULT_TYPES
    #: Where every options run archives its snapshot (a directory or ``s3://bucket/prefix``);
    #: None: this warehouse's own directory under ``DEFAULT_ARCHIVE_DIR`` (``kapman.archive.warehouse``).
    archive_location: str | None = None
    #: The warehouse's identity in its archive (KAPMAN_WAREHOUSE); None: the database's name and server.
    warehouse: str | None = None
    #: S3-compatible endpoint of an ``s3://`` archive (unset: AWS); keys unset: boto3's own chain.
    archive_endpoint: str | None = None
    archive_access_key_id: str | None = None
    archive_secret_access_key: str | None = None
    #: An ``s3://`` archive's seconds to connect and to wait for each read of a response.
    archive_connect_timeout: float = 3.0
    archive_read_timeout: float = 10.0
    #: The ``.env`` file the settings were read with (None: not read from one), for messages.
    env_file: Path | None = field(default=None, compare=False)

    def __repr__(self) -> str:  # never leak secrets
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "database_url":
                value = mask_url(value)
            elif f.name in _SECRET_FIELDS:
                value = _secret(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    def _looked_in(self) -> str:
        """Where a setting was looked for: the environment and the ``.env`` file, by its path."""
        if self.env_file is None:
            return "the environment and .env"
        missing = "" if self.env_file.is_file() else ", which does not exist"
        return f"the environment and {self.env_file}{missing}"

    def require_database_url(self) -> str:
        if not self.database_url:
            env = self.env_file or ".env"
            raise ConfigError(
                f"DATABASE_URL is not set (looked in {self._looked_in()})",
                hint=registry.in_checkout("copy .env.example to .env", f"put DATABASE_URL=... in {env}")
                + ", or pass --db-url postgresql://user:password@host:port/db",
            )
        return self.database_url

    def require_polygon_api_key(self) -> str:
        if not self.polygon_api_key:
            raise ConfigError(
                f"POLYGON_API_KEY is not set (looked in {self._looked_in()})",
                hint="put your Polygon/Massive API key in .env, or start the offline sandbox "
                     f"({registry.command('sandbox')} serve) and use the environment it prints",
            )
        odd = next((i for i, c in enumerate(self.polygon_api_key) if not "!" <= c <= "~"), None)
        if odd is not None:  # an HTTP header cannot carry it, and the error saying so would quote the key
            raise ConfigError(f"POLYGON_API_KEY holds a character other than visible ASCII (position {odd + 1}); "
                              "the key is not shown", hint="copy the key into .env again: it is letters and digits")
        return self.polygon_api_key

    def secrets(self) -> list[str]:
        """Every secret value in force, so output scrubbers can hide them."""
        out = [s for s in (self.polygon_api_key, self.flatfiles_secret_access_key, self.archive_secret_access_key)
               if s]
        if self.database_url:
            pw = url_password(self.database_url)
            if pw:
                out.append(pw)
        return out


def default_watchlists_dir() -> Path:
    """``data/watchlists`` of the home directory when it has one, else the watchlists KapMan ships."""
    own = PROJECT_ROOT / "data" / "watchlists"
    return own if own.is_dir() or CHECKOUT is not None else shipped("watchlists")


def shipped(kind: str) -> Path:
    """The files KapMan ships, ``migrations`` (``db/migrations``), ``watchlists`` (``data/watchlists``) or
    ``dashboards`` (the runbook's psql dashboards, ``docs/runbooks/*.sql``): the checkout's directory, or
    its copy inside the installed package (``kapman/_shipped/``)."""
    where = {"migrations": ("db", "migrations"), "watchlists": ("data", "watchlists"),
             "dashboards": ("docs", "runbooks")}[kind]
    if CHECKOUT is not None:
        return CHECKOUT.joinpath(*where)
    return Path(__file__).resolve().parent / "_shipped" / kind


def _env_path() -> Path:
    return Path(os.environ.get("KAPMAN_ENV_FILE", PROJECT_ROOT / ".env"))


def env_setting(name: str) -> str | None:
    """One variable by the settings' precedence (the environment, then ``.env``), the others left unread:
    for a command that needs no ``Settings`` (the sandbox)."""
    path = _env_path()
    return _env({**(read_env_file(path) if path.is_file() else {}), **os.environ}, name)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file; a byte that is not UTF-8 is one error naming file and line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # an editor's byte-order mark is not part of the first name
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column})",
                          hint="save the file as UTF-8") from None
    for binding in parse_stream(io.StringIO(text)):  # the line is not quoted back: it may hold a secret
        if binding.error:
            raise ConfigError(f"{path}:{binding.original.line}: not a KEY=value line",
                              hint="fix or remove the line (# starts a comment)")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def on_loopback(url: str) -> bool:
    """Whether ``url`` names a server on this machine (``is_loopback`` of its host), as the offline
    sandbox's URL does."""
    return is_loopback(urlsplit(url).hostname or "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_endpoint(name: str, base: str, example: str) -> None:
    """POLYGON_BASE_URL (where the API key goes) and the S3 endpoints (where the keys go): an http(s)
    scheme and a host, nothing else, refused in one line naming the variable (boto3 took
    ``notaurl`` for a bug: "unexpected ValueError: Invalid endpoint")."""
    try:
        parts = urlsplit(base)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # an unclosed IPv6 bracket, a port that is no number
        parts, port_ok = urlsplit(""), False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        why = "must be http(s)://host[:port]"
    elif parts.path not in ("", "/"):
        why = "must have no path"
    elif parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        why = "must have no user information, query or fragment"
    else:
        return
    raise ConfigError(f"{name} {why}, got {mask_url(base)}", hint=f"use e.g. {example}")


#: What S3 (and botocore, before any request) accepts as a bucket name.
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")


def _bucket(merged: dict[str, str]) -> str:
    bucket = _env(merged, "FLATFILES_BUCKET", DEFAULT_FLATFILES_BUCKET) or DEFAULT_FLATFILES_BUCKET
    if not _BUCKET.fullmatch(bucket):   # botocore refused it as "ParamValidationError", naming no variable
        raise ConfigError(f"FLATFILES_BUCKET={bucket!r} is not a bucket name (letters, digits, '.', '-', '_')",
                          hint=f"use e.g. FLATFILES_BUCKET={DEFAULT_FLATFILES_BUCKET}")
    return bucket


def _check_clock(merged: dict[str, str], path: Path) -> None:
    raw = _env(merged, "KAPMAN_NOW")
    if raw is None:
        return
    try:
        parse_instant(raw)
    except ValueError:
        where = "the environment" if os.environ.get("KAPMAN_NOW", "").strip() else str(path)
        raise ConfigError(f"KAPMAN_NOW={raw!r} (from {where}) is not {INSTANT_FORMS}",
                          hint="use e.g. KAPMAN_NOW=2025-12-19 or 2025-12-19T21:00:00Z, or unset it") from None


def load_settings(env_file: Path | None = None, *, database_url: str | None = None) -> Settings:
    """Read settings: process environment first, then ``.env`` (project root or ``env_file``)."""
    if os.environ.get("KAPMAN_HOME") and not PROJECT_ROOT.is_dir():
        raise ConfigError(f"KAPMAN_HOME={os.environ['KAPMAN_HOME']} is not a directory",
                          hint="create it (it holds .env, archive/ and logs/) or unset KAPMAN_HOME")
    path = env_file or _env_path()
    file_values = read_env_file(path) if path.is_file() else {}
    merged = {**file_values, **os.environ}
    _check_clock(merged, path)
    # The sandbox and tests set KAPMAN_NOW in .env too; make it visible to kapman.clock.
    if "KAPMAN_NOW" in file_values and "KAPMAN_NOW" not in os.environ:
        os.environ["KAPMAN_NOW"] = file_values["KAPMAN_NOW"]
    mirror = _env(merged, "FLATFILES_MIRROR_DIR")
    watch = _env(merged, "KAPMAN_WATCHLISTS_DIR")
    types = _env(merged, "KAPMAN_TICKER_TYPES")
    base = (_env(merged, "POLYGON_BASE_URL", DEFAULT_POLYGON_BASE) or DEFAULT_POLYGON_BASE).rstrip("/")
    _check_endpoint("POLYGON_BASE_URL", base, DEFAULT_POLYGON_BASE)
    if urlsplit(base).scheme == "http" and not on_loopback(base):
        raise ConfigError(f"POLYGON_BASE_URL {mask_url(base)} is plain http to another machine: the API key "
                          "would cross the network readable by anyone on the way",
                          hint="use https:// (plain http is for a server on this machine, as the sandbox's)")
    for name, example in (("FLATFILES_ENDPOINT", DEFAULT_FLATFILES_ENDPOINT),
                          ("KAPMAN_ARCHIVE_ENDPOINT", "http://127.0.0.1:9000, or unset it for AWS")):
        endpoint = _env(merged, name)
        if endpoint is not None:
            _check_endpoint(name, endpoint.rstrip("/"), example)
    return Settings(
        database_url=database_url or _env(merged, "DATABASE_URL"),
        polygon_api_key=_env(merged, "POLYGON_API_KEY") or _env(merged, "MASSIVE_API_KEY"),
        polygon_base_url=base,
        polygon_rate_limit=env_number(merged, "POLYGON_RATE_LIMIT", 50.0, RATE_LIMIT_RANGE),
        polygon_connect_timeout=env_number(merged, "POLYGON_CONNECT_TIMEOUT", 10.0, TIMEOUT_RANGE),
        polygon_read_timeout=env_number(merged, "POLYGON_READ_TIMEOUT", 30.0, TIMEOUT_RANGE),
        polygon_max_retries=int(env_number(merged, "POLYGON_MAX_RETRIES", 6, RETRIES_RANGE)),
        polygon_request_deadline=env_number(merged, "POLYGON_REQUEST_DEADLINE", 120.0, REQUEST_DEADLINE_RANGE),
        options_run_deadline=env_number(merged, "OPTIONS_RUN_DEADLINE", 3600.0, RUN_DEADLINE_RANGE),
        flatfiles_endpoint=_env(merged, "FLATFILES_ENDPOINT", DEFAULT_FLATFILES_ENDPOINT) or "",
        flatfiles_bucket=_bucket(merged),
        flatfiles_stocks_prefix=(_env(merged, "FLATFILES_STOCKS_PREFIX", DEFAULT_STOCKS_PREFIX) or "").strip("/"),
        flatfiles_access_key_id=_env(merged, "FLATFILES_ACCESS_KEY_ID"),
        flatfiles_secret_access_key=_env(merged, "FLATFILES_SECRET_ACCESS_KEY"),
        flatfiles_mirror_dir=Path(mirror) if mirror else None,
        watchlists_dir=Path(watch) if watch else default_watchlists_dir(),
        ticker_types=parse_types(types, source="KAPMAN_TICKER_TYPES") if types else DEFAULT_TYPES,
        archive_location=_env(merged, "KAPMAN_ARCHIVE_DIR"),
        warehouse=_env(merged, "KAPMAN_WAREHOUSE"),
        archive_endpoint=_env(merged, "KAPMAN_ARCHIVE_ENDPOINT"),
        archive_access_key_id=_env(merged, "KAPMAN_ARCHIVE_ACCESS_KEY_ID"),
        archive_secret_access_key=_env(merged, "KAPMAN_ARCHIVE_SECRET_ACCESS_KEY"),
        archive_connect_timeout=env_number(merged, "KAPMAN_ARCHIVE_CONNECT_TIMEOUT", 3.0, TIMEOUT_RANGE),
        archive_read_timeout=env_number(merged, "KAPMAN_ARCHIVE_READ_TIMEOUT", 10.0, TIMEOUT_RANGE),
        env_file=path,
    )
