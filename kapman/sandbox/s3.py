"""The flat-file bucket on a local moto S3 server (``ThreadedMotoServer`` on 127.0.0.1).

moto keeps buckets in process-wide state, so only one ``SandboxS3`` per bucket name should be live
at a time; the bucket is emptied on start and removed on stop.
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
from moto.server import ThreadedMotoServer

from kapman.sandbox.flatfiles import PREFIX
from kapman.sandbox.market import Market

log = logging.getLogger(__name__)

#: Parallel uploads: moto answers each PUT on its own thread.
UPLOAD_WORKERS = 8


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
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
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
        # No ContentEncoding: clients get the gzip bytes and decompress themselves, as in production.
        response = self._client.put_object(
            Bucket=self.bucket,
            Key=self.market.flat_file_key(day),
            Body=self.market.flat_file_csv_gz(day, mtime=mtime),
        )
        return str(response["ETag"])

    def republish(self, day: date) -> str:
        """Upload the day's file again with different bytes (same rows, new gzip header), so its
        ETag changes as when the vendor republishes; returns the new ETag."""
        self._revisions[day] = self._revisions.get(day, 0) + 1
        return self._upload(day, mtime=self._revisions[day])

    def delete(self, day: date) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.market.flat_file_key(day))
