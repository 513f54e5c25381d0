"""An S3Source pointed at a sandbox S3 server, built through the settings as a user's would be."""

from __future__ import annotations

import os
from pathlib import Path

from kapman.config import load_settings
from kapman.providers.flatfiles import S3Source
from kapman.sandbox.s3 import SandboxS3


def sandbox_s3_source(server: SandboxS3) -> S3Source:
    """The FLATFILES_* settings of ``server`` for the moment of construction only."""
    env = {"FLATFILES_ENDPOINT": server.endpoint_url, "FLATFILES_ACCESS_KEY_ID": server.access_key_id,
           "FLATFILES_SECRET_ACCESS_KEY": server.secret_access_key}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return S3Source(load_settings(Path("/nonexistent")))
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
