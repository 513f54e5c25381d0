"""The environment that points KapMan at a running sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kapman.config import RATE_LIMIT_RANGE
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer

if TYPE_CHECKING:  # moto, behind it, is the 'sandbox' extra: --help and write-mirror work without it
    from kapman.sandbox.s3 import SandboxS3


def environment(market: Market, rest: SandboxRestServer, s3: SandboxS3 | None = None,
                mirror_dir: Path | None = None) -> dict[str, str]:
    # The request budget protects the vendor's servers; a local sandbox has none to protect, so runs
    # against it are not paced (its 429 faults still exercise the client's backing off).
    env = {"POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
           "POLYGON_RATE_LIMIT": str(int(RATE_LIMIT_RANGE.high))}
    if s3 is not None:
        env.update({"FLATFILES_ENDPOINT": s3.endpoint_url, "FLATFILES_BUCKET": s3.bucket,
                    "FLATFILES_ACCESS_KEY_ID": s3.access_key_id,
                    "FLATFILES_SECRET_ACCESS_KEY": s3.secret_access_key})
    if mirror_dir is not None:
        env["FLATFILES_MIRROR_DIR"] = str(mirror_dir)
    env["KAPMAN_NOW"] = market.now.isoformat().replace("+00:00", "Z")
    return env
