"""Flat files written to a local directory with the bucket's key layout (FLATFILES_MIRROR_DIR)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from kapman.sandbox.market import Market

log = logging.getLogger(__name__)


def write_mirror(market: Market, directory: Path | str, days: Iterable[date] | None = None) -> list[Path]:
    """Write ``<directory>/us_stocks_sip/day_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz`` for each trading day
    (all of the market's by default); unchanged files are left untouched."""
    root = Path(directory)
    written = [_write(root / market.flat_file_key(day), market.flat_file_csv_gz(day))
               for day in (market.trading_days if days is None else days)]
    log.info("wrote %d flat files under %s", len(written), root)
    return written


def write_preliminary(market: Market, directory: Path | str, day: date) -> Path:
    """Write the day's file as first published at the close (``Market.preliminary_bars``);
    ``write_mirror`` for that day writes the next morning's correction."""
    return _write(Path(directory) / market.flat_file_key(day), market.preliminary_flat_file_csv_gz(day))


def _write(path: Path, data: bytes) -> Path:
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic, so a reader never sees half a file
    return path
