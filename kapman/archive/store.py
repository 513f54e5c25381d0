"""Where the archive's files live: a local directory, or a prefix of an S3-compatible bucket.

Both stores write atomically: a local file is written under a temporary name in its directory and
renamed into place; an S3 PUT makes an object visible whole or not at all.  A file is listed in a
manifest only after it is written, so a reader never meets a half-written file it was told about.

A local archive directory is created when missing, but not its parent: a directory on a disk that
is not mounted must fail, not quietly fill the system disk.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kapman.config import Settings
from kapman.errors import KapManError


class ArchiveError(KapManError):
    """The archive cannot be read or written (missing, read-only, bucket refused, file absent)."""


class Store(Protocol):
    @property
    def location(self) -> str: ...  # for messages: a path or an s3:// URL, never a secret

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def keys(self, prefix: str) -> list[str]: ...

    def sizes(self, prefix: str) -> dict[str, int]: ...  # keys() with each file's size, from the listing

    def delete(self, key: str) -> None: ...  # absent already: not an error


@dataclass
class LocalStore:
    root: Path
    #: Make missing parents of ``root`` on first write: only for KapMan's own default location
    #: (``archive/<warehouse>`` under its home, absent in a fresh checkout).  A directory the user
    #: names must have an existing parent, so that a typo or an unmounted volume is refused.
    make_parents: bool = False

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _check_root(self) -> None:
        """A file where the archive should be: it holds nothing and takes nothing (it read as an
        empty archive, and status named ``--archive-only``, which cannot write there)."""
        if self.root.exists() and not self.root.is_dir():
            raise ArchiveError(f"KAPMAN_ARCHIVE_DIR={self.root} is not a directory",
                               hint="point KAPMAN_ARCHIVE_DIR at the archive's directory (or s3://bucket/prefix)")

    def put(self, key: str, data: bytes) -> None:
        self._check_root()
        path = self._path(key)
        try:
            if not self.root.is_dir():  # FileNotFoundError when the parent is missing too
                self.root.mkdir(parents=self.make_parents, exist_ok=True)  # another writer may be making it now
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}",
                               hint="check KAPMAN_ARCHIVE_DIR: the directory (or its parent) must exist "
                                    "and be writable") from None

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot remove {path}: {exc.strerror or exc}") from None

    def keys(self, prefix: str) -> list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        self._check_root()
        base = self._path(prefix)
        if not base.is_dir():
            return {}
        try:
            return {p.relative_to(self.root).as_posix(): p.stat().st_size for p in base.rglob("*")
                    if p.is_file() and not p.name.startswith(".")}
        except OSError as exc:
            raise ArchiveError(f"cannot list {base}: {exc.strerror or exc}") from None


class S3Store:
    """``s3://bucket/prefix`` through boto3, at ``endpoint`` (any S3-compatible store)."""

    def __init__(self, url: str, client: Any) -> None:
        parts = urlsplit(url)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, verb: str, key: str, exc: Exception) -> ArchiveError:
        from botocore.exceptions import ClientError

        reason = str(exc)
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            reason = f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")
        return ArchiveError(f"cannot {verb} {self.location}/{key}: {reason}",
                            hint="check KAPMAN_ARCHIVE_DIR, KAPMAN_ARCHIVE_ENDPOINT and the archive's keys")

    def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._error("write", key, exc) from None

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except (BotoCoreError, ClientError) as exc:
            raise self._error("read", key, exc) from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("remove", key, exc) from None

    def keys(self, prefix: str) -> list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str) -> dict[str, int]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = len(self.prefix) + 1 if self.prefix else 0
        out: dict[str, int] = {}
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=self._key(prefix)):
                out.update((item["Key"][start:], int(item.get("Size", 0))) for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list", prefix, exc) from None
        return out


#: An S3 archive's attempts per request (the first included).  With its own timeouts
#: (KAPMAN_ARCHIVE_CONNECT_TIMEOUT, KAPMAN_ARCHIVE_READ_TIMEOUT: 3 s and 10 s by default) a hung
#: endpoint costs one request at most ATTEMPTS x (connect + read) seconds (26 s): the archive stops
#: at its first error, and the options run goes on without it (botocore's defaults would wait 60 s
#: per try, five tries).
S3_ATTEMPTS = 2


def s3_config(settings: Settings) -> Any:
    from botocore.config import Config

    return Config(s3={"addressing_style": "path"}, connect_timeout=settings.archive_connect_timeout,
                  read_timeout=settings.archive_read_timeout,
                  retries={"total_max_attempts": S3_ATTEMPTS, "mode": "standard"})


def location_of(settings: Settings) -> str:
    """``KAPMAN_ARCHIVE_DIR``, or this warehouse's own directory (``kapman.archive.warehouse``)."""
    if settings.archive_location:
        return settings.archive_location
    from kapman.archive.warehouse import default_location

    return default_location(settings)


def _inside_an_archive(location: str) -> ArchiveError | None:
    """A location inside an archive's layout: a snapshot date's directory (``.../date=...``), or an
    ``options_chains`` directory holding dates.  It read as an empty archive (a restore found "nothing
    archived") and was written as an archive nested in the other."""
    parts = [p for p in location.split("://", 1)[-1].split("/") if p]
    inner = next((p for p in parts if p.startswith(("date=", "snapshot=", "time="))), None)
    if inner is None and parts and parts[-1] == "options_chains" and "://" not in location:
        path = Path(location).expanduser()
        inner = parts[-1] if path.is_dir() and any(path.glob("date=*")) else None
    if inner is None:
        return None
    return ArchiveError(f"KAPMAN_ARCHIVE_DIR={location} points inside an archive ({inner})",
                        hint="name the directory (or s3://bucket/prefix) that holds options_chains/")


def open_store(settings: Settings) -> Store:
    """The store ``KAPMAN_ARCHIVE_DIR`` names (a relative directory from the working directory, named
    by its absolute path).  Raises ArchiveError for one that cannot be an archive."""
    location = location_of(settings)
    inside = _inside_an_archive(location)
    if inside is not None:
        raise inside
    if location.startswith("s3://"):
        try:
            bucket = urlsplit(location).netloc
        except ValueError as exc:  # an unclosed IPv6 bracket
            raise ArchiveError(f"KAPMAN_ARCHIVE_DIR={location} is not a URL ({exc})",
                               hint="use s3://bucket/prefix") from None
        if not bucket:
            raise ArchiveError(f"KAPMAN_ARCHIVE_DIR={location} names no bucket", hint="use s3://bucket/prefix")
        import boto3

        client = boto3.client(
            "s3", region_name=boto3.session.Session().region_name or "us-east-1",
            endpoint_url=settings.archive_endpoint or None,
            aws_access_key_id=settings.archive_access_key_id or None,
            aws_secret_access_key=settings.archive_secret_access_key or None,
            config=s3_config(settings),
        )
        return S3Store(location, client)
    if "://" in location:
        raise ArchiveError(f"KAPMAN_ARCHIVE_DIR={location}: only directories and s3:// URLs are supported")
    # absolute, so that every message names the directory really read (a relative one depends on where
    # the command runs: cron's working directory is not the checkout's)
    return LocalStore(Path(location).expanduser().absolute(), make_parents=not settings.archive_location)
