"""Polygon/Massive day-aggregate flat files, from S3 or from a local mirror of the bucket.

Keys: ``<prefix>/YYYY/MM/YYYY-MM-DD.csv.gz``.  A file is identified by its key and versioned by
its ETag (S3's, or for the mirror the MD5 of the bytes, which is what S3 reports for a
single-part upload), so a republished file is noticed.

A 403 on the listing means the keys (or the plan) do not give access to flat files at all: an
``AuthError``.  A 403 on one object does not say why (outside the plan's history, not yet
published, agreements unsigned): an ``EntitlementError`` for that file alone.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from kapman import registry
from kapman.config import Settings
from kapman.errors import (
    AuthError,
    ConfigError,
    EntitlementError,
    NotFoundError,
    ProviderError,
    TransientProviderError,
)

_KEY_DATE = re.compile(r"(\d{4})/(\d{2})/(\d{4}-\d{2}-\d{2})\.csv\.gz$")
FORMAT = "csv.gz"
#: The largest object read from S3: a day file of the whole market is about 200 KB of gzip.
MAX_OBJECT_BYTES = 64 * 2**20
CREDENTIALS_HINT = ("check FLATFILES_ACCESS_KEY_ID/SECRET (S3 keys, not the REST API key) and that your plan "
                    "includes flat files; without flat files use --source rest")
OBJECT_REFUSED = ("S3 refused this object (403 AccessDenied) although the listing worked: outside the plan's "
                  "history, not yet published, or agreements unsigned (S3 does not say which)")


@dataclass(frozen=True)
class FileRef:
    key: str
    day: date
    etag: str
    size: int


def key_date(key: str) -> date | None:
    """The trading day a day file's key names, or None when it names none (``2025-13-45``
    included: a stray object is not a day file, and must not stop the listing)."""
    match = _KEY_DATE.search(key)
    try:
        return date.fromisoformat(match.group(3)) if match else None
    except ValueError:
        return None


def _months(start: date, end: date) -> list[tuple[int, int]]:
    out, (y, m) = [], (start.year, start.month)
    while (y, m) <= (end.year, end.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


class FlatFileSource(Protocol):
    label: str
    format: str      # how ``read``'s bytes are parsed: "csv.gz" or "grouped-json"
    unit: str        # what one ref is, in messages: "files" or "dates"

    def list_files(self, start: date, end: date) -> list[FileRef]: ...

    def read(self, ref: FileRef) -> bytes: ...

    def close(self) -> None: ...


class MirrorSource:
    """A directory with the bucket's key layout."""

    format = FORMAT
    unit = "files"

    def __init__(self, root: Path, prefix: str) -> None:
        if not root.is_dir():
            raise ConfigError(f"FLATFILES_MIRROR_DIR {root} is not a directory",
                              hint=f"write one with {registry.command('sandbox')} write-mirror DIR, "
                                   "or unset it to use S3")
        self.root, self.prefix = root, prefix.strip("/")
        self.label = f"file://{root}"

    def list_files(self, start: date, end: date) -> list[FileRef]:
        refs = []
        for year, month in _months(start, end):
            folder = self.root / self.prefix / f"{year:04d}" / f"{month:02d}"
            for path in sorted(folder.glob("*.csv.gz")) if folder.is_dir() else []:
                day = key_date(str(path))
                if day and start <= day <= end and path.is_file():
                    data = path.read_bytes()
                    refs.append(FileRef(str(path.relative_to(self.root)), day,
                                        hashlib.md5(data).hexdigest(), len(data)))  # noqa: S324 - S3 ETag semantics
        return refs

    def read(self, ref: FileRef) -> bytes:
        return (self.root / ref.key).read_bytes()

    def close(self) -> None:
        pass


class S3Source:
    """The S3 bucket (boto3, signature v4, path-style addressing)."""

    format = FORMAT
    unit = "files"

    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        if not (settings.flatfiles_access_key_id and settings.flatfiles_secret_access_key):
            raise ConfigError("FLATFILES_ACCESS_KEY_ID / FLATFILES_SECRET_ACCESS_KEY are not set",
                              hint="add the S3 keys from the Massive dashboard to .env, or set "
                                   "FLATFILES_MIRROR_DIR to a local mirror")
        self.bucket, self.prefix = settings.flatfiles_bucket, settings.flatfiles_stocks_prefix
        self.label = f"s3://{self.bucket}"
        self._local = threading.local()
        self._make = lambda: boto3.session.Session().client(  # boto3 clients are per thread
            "s3", endpoint_url=settings.flatfiles_endpoint, region_name="us-east-1",
            aws_access_key_id=settings.flatfiles_access_key_id,
            aws_secret_access_key=settings.flatfiles_secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 5, "mode": "standard"},
                          connect_timeout=10, read_timeout=60))

    @property
    def _client(self):  # type: ignore[no-untyped-def]
        if not hasattr(self._local, "client"):
            self._local.client = self._make()
        return self._local.client

    def _call(self, what: str, fn, *, listing: bool = False, **kw):  # type: ignore[no-untyped-def]
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404"):
                raise NotFoundError(f"{what}: no such object", status=404, url=what) from None
            if status == 403 and code == "AccessDenied" and not listing:
                raise EntitlementError(f"{what}: {OBJECT_REFUSED}", status=status, url=what) from None
            if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise AuthError(f"{what}: S3 refused access ({code or status})", status=status, url=what,
                                hint=CREDENTIALS_HINT) from None
            if status and status >= 500:
                raise TransientProviderError(f"{what}: S3 {status} {code}", status=status, url=what) from None
            raise ProviderError(f"{what}: S3 error {code}", status=status, url=what) from None
        except BotoCoreError as exc:
            raise TransientProviderError(f"{what}: {type(exc).__name__}", url=what) from None

    def list_files(self, start: date, end: date) -> list[FileRef]:
        refs = []
        for year, month in _months(start, end):
            prefix = f"{self.prefix}/{year:04d}/{month:02d}/"
            token: str | None = None
            seen: set[str] = set()
            while True:
                kw = {"Bucket": self.bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
                page = self._call(f"list {prefix}", self._client.list_objects_v2, listing=True, **kw)
                for obj in page.get("Contents", []):
                    day = key_date(obj["Key"])
                    if day and start <= day <= end:
                        refs.append(FileRef(obj["Key"], day, obj["ETag"].strip('"'), int(obj["Size"])))
                if not page.get("IsTruncated"):
                    break
                token = page.get("NextContinuationToken")
                # A truncated page without a new token would list the same page again, forever.
                if not isinstance(token, str) or not token or token in seen:
                    raise ProviderError(f"list {prefix}: the listing is truncated but gives "
                                        f"{'the same' if token in seen else 'no'} continuation token; stopping",
                                        url=f"list {prefix}")
                seen.add(token)
        return sorted(refs, key=lambda r: r.day)

    def read(self, ref: FileRef) -> bytes:
        """The object's bytes, no more than ``MAX_OBJECT_BYTES`` of them: a day file is about 200 KB."""
        obj = self._call(ref.key, self._client.get_object, Bucket=self.bucket, Key=ref.key)
        data = self._call(ref.key, obj["Body"].read, amt=MAX_OBJECT_BYTES + 1)
        if len(data) > MAX_OBJECT_BYTES:
            raise ProviderError(f"{ref.key}: the object passes {MAX_OBJECT_BYTES // 2**20} MiB (a day file is about "
                                "200 KB); not read further", url=ref.key)
        return bytes(data)

    def close(self) -> None:
        pass


def source_from_settings(settings: Settings) -> FlatFileSource:
    if settings.flatfiles_mirror_dir:
        return MirrorSource(settings.flatfiles_mirror_dir, settings.flatfiles_stocks_prefix)
    return S3Source(settings)
