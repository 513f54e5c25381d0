"""The flat-file bucket on a local moto S3 server (``ThreadedMotoServer`` on 127.0.0.1).

moto keeps buckets in process-wide state, so only one ``SandboxS3`` per bucket name should be live
at a time; the bucket is emptied on start and removed on stop.

Faults the real bucket has: ``forbid(days)`` answers 403 AccessDenied for those days' objects
(outside the plan's history, not yet published, agreements unsigned: S3 does not say which) and
``forbid_listing()`` for every listing; ``publish_preliminary(day)`` uploads the file as first
published at the close, and ``publish_final(day)`` the next morning's correction (another ETag).
``apply`` takes the same as JSON, for the REST server's ``/_sandbox/flatfiles`` control endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from kapman.errors import ConfigError

try:  # moto is the 'sandbox' extra: a plain install runs everything but the offline market
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server
except ModuleNotFoundError as exc:
    raise ConfigError(f"the sandbox's S3 server needs moto, which is not installed ({exc.msg})",
                      hint="pip install 'kapman[sandbox]'") from None

from kapman.sandbox import flatfiles
from kapman.sandbox.flatfiles import PREFIX
from kapman.sandbox.market import Market

log = logging.getLogger(__name__)

#: Parallel uploads: moto answers each PUT on its own thread.
UPLOAD_WORKERS = 8
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")


class _Refusals:
    """Which requests the bucket refuses with 403, shared with the server thread."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.listing = False

    def refuses(self, environ: dict[str, Any]) -> bool:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return False
        path = environ.get("PATH_INFO", "")
        if not path.strip("/"):
            return False         # ListBuckets: the sandbox's own housekeeping
        if "list-type" in environ.get("QUERY_STRING", "") or path.count("/") <= 1:
            return self.listing
        return path.split("/", 2)[-1] in self.keys


class _RefusingServer(ThreadedMotoServer):
    """moto's threaded server with a WSGI layer in front that answers 403 for refused requests."""

    def __init__(self, refusals: _Refusals, **kw: Any) -> None:
        super().__init__(**kw)
        self.refusals = refusals

    def _server_entry(self) -> None:
        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if self.refusals.refuses(environ):
                start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                                 ("Content-Length", str(len(ACCESS_DENIED)))])
                return [ACCESS_DENIED]
            return moto_app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


class SandboxS3:
    """Start moto, create ``bucket`` and upload the market's day files (all days by default)."""

    access_key_id = "sandbox-access-key"
    secret_access_key = "sandbox-secret-key"
    region = "us-east-1"
    prefix = PREFIX

    def __init__(
        self, market: Market, days: Iterable[date] | None = None, bucket: str = "flatfiles", port: int = 0
    ) -> None:
        self.market, self.bucket = market, bucket
        self.days = list(days) if days is not None else list(market.trading_days)
        self._refusals = _Refusals()
        self._server = _RefusingServer(self._refusals, ip_address="127.0.0.1", port=port, verbose=False)
        self._revisions: dict[date, int] = {}
        self.endpoint_url = ""
        self._client: Any = None

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, any credentials work)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=UPLOAD_WORKERS),
        )

    def start(self) -> SandboxS3:
        # moto serves through werkzeug, which installs its own console handler for per-request
        # lines unless its logger already has a level; keep it to warnings.
        werkzeug = logging.getLogger("werkzeug")
        if werkzeug.level == logging.NOTSET:
            werkzeug.setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._client = self.client()
        self._reset_bucket()
        self._client.create_bucket(Bucket=self.bucket)
        with ThreadPoolExecutor(UPLOAD_WORKERS) as pool:
            list(pool.map(self._upload, self.days))
        log.info(
            "sandbox S3 on %s: %d files in s3://%s/%s",
            self.endpoint_url,
            len(self.days),
            self.bucket,
            self.prefix,
        )
        return self

    def stop(self) -> None:
        self.allow()
        try:
            self._reset_bucket()
        finally:
            self._server.stop()

    def __enter__(self) -> SandboxS3:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _reset_bucket(self) -> None:
        names = [b["Name"] for b in self._client.list_buckets().get("Buckets", [])]
        if self.bucket not in names:
            return
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        self._client.delete_bucket(Bucket=self.bucket)

    def _upload(self, day: date, mtime: int = 0) -> str:
        return self._put(day, self.market.flat_file_csv_gz(day, mtime=mtime))

    def _put(self, day: date, body: bytes) -> str:
        # No ContentEncoding: clients get the gzip bytes and decompress themselves, as in production.
        response = self._client.put_object(Bucket=self.bucket, Key=self.market.flat_file_key(day), Body=body)
        return str(response["ETag"])

    def republish(self, day: date) -> str:
        """Upload the day's file again with different bytes (same rows, new gzip header), so its
        ETag changes as when the vendor republishes; returns the new ETag."""
        self._revisions[day] = self._revisions.get(day, 0) + 1
        return self._upload(day, mtime=self._revisions[day])

    def publish_preliminary(self, day: date) -> str:
        """Upload the day's file as published at the close (``Market.preliminary_bars``)."""
        return self._put(day, self.market.preliminary_flat_file_csv_gz(day))

    def publish_final(self, day: date) -> str:
        """Upload the day's final file, as corrected the next morning; returns its ETag."""
        return self._upload(day)

    def tamper(self, day: date, **edits: Any) -> str:
        """Upload the day's file hand-edited (``flatfiles.tamper``); returns its ETag."""
        return self._put(day, flatfiles.tamper(self.market.flat_file_csv_gz(day), **edits))

    def forbid(self, days: Iterable[date]) -> None:
        """Answer 403 AccessDenied for these days' objects (listing still works)."""
        self._refusals.keys |= {self.market.flat_file_key(d) for d in days}

    def forbid_listing(self, refused: bool = True) -> None:
        """Answer 403 AccessDenied for every listing of the bucket (wrong or unentitled keys)."""
        self._refusals.listing = refused

    def allow(self) -> None:
        """Stop refusing anything."""
        self._refusals.keys.clear()
        self._refusals.listing = False

    def delete(self, day: date) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.market.flat_file_key(day))

    def describe(self) -> dict[str, Any]:
        """What the bucket refuses now, for the control endpoint."""
        return {"forbidden": sorted(self._refusals.keys), "listing_forbidden": self._refusals.listing}

    def apply(self, spec: dict[str, Any]) -> dict[str, str]:
        """A control-endpoint JSON body, e.g. ``{"action": "preliminary", "date": "2025-12-19"}``.

        Actions: preliminary, final, republish, delete (one ``date``); forbid (``dates``, a list);
        forbid_listing; allow; tamper (one ``date``: the file hand-edited, with ``add_columns``,
        ``drop_columns``, ``rows`` as in ``flatfiles.tamper``).  Returns the new ETag of an upload.
        Raises ValueError on anything else.
        """
        action = spec.get("action")
        if action == "tamper":
            day = date.fromisoformat(str(spec.get("date")))
            edits = {k: spec[k] for k in ("add_columns", "drop_columns", "rows") if k in spec}
            return {"etag": self.tamper(day, **edits)}
        one_day = {"preliminary": self.publish_preliminary, "final": self.publish_final,
                   "republish": self.republish}
        if action in one_day or action == "delete":
            day = date.fromisoformat(str(spec.get("date")))
            if action == "delete":
                self.delete(day)
                return {}
            return {"etag": one_day[action](day)}
        if action == "forbid":
            days = spec.get("dates")
            if not isinstance(days, list) or not days:
                raise ValueError("forbid needs \"dates\": a list of ISO dates")
            self.forbid(date.fromisoformat(str(d)) for d in days)
        elif action == "forbid_listing":
            self.forbid_listing(bool(spec.get("refused", True)))
        elif action == "allow":
            self.allow()
        else:
            raise ValueError(f"unknown flat-file action {action!r}; expected one of "
                             f"{sorted([*one_day, 'delete', 'forbid', 'forbid_listing', 'allow', 'tamper'])}")
        return {}
